package cache

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aside-go/aside/internal/envelope"
)

// TestClassify sorts every kind of reply a visit can get, without Redis.
func TestClassify(t *testing.T) {
	t.Parallel()
	lease := envelope.Encode(envelope.Lease, false, time.Time{}, []byte("0123456789abcdef"))
	value := envelope.Encode(envelope.Value, false, time.Time{}, []byte("v"))
	marker := envelope.Encode(envelope.NotFound, false, time.Time{}, nil)
	newer := append([]byte(nil), value...)
	newer[1] = envelope.Version + 1
	bad := []byte{envelope.Magic, envelope.Version} // an entry cut short
	oom := visited{err: errors.New("OOM command not allowed when used memory > 'maxmemory'."), refused: true}
	for _, tc := range []struct {
		name    string
		v       visited
		offered bool
		want    verdict
	}{
		{"connection lost", failedVisit(io.EOF), true, unavailable},
		{"budget ran out", failedVisit(errors.Join(ErrUnavailable, io.ErrUnexpectedEOF)), false, unavailable},
		{"lease refused", oom, true, refusedLease},
		{"plain read refused", oom, false, refusedRead},
		{"changed between round trips", visited{changed: true}, true, changedMeanwhile},
		{"missing, leased to us", visited{pttl: 5000}, true, leasedToUs},
		{"missing, no lease offered", visited{pttl: -2}, false, missing},
		{"plain lease key held", visited{lease: lease, pttl: 4000}, true, leased},
		{"plain lease key without expiry", visited{lease: lease, pttl: -1}, true, notALease},
		{"lease in the key", visited{raw: lease, found: true, pttl: 4000}, true, leased},
		{"lease in the key without expiry", visited{raw: lease, found: true, pttl: -1}, true, unreadable},
		{"value", visited{raw: value, found: true, pttl: 60000}, true, found},
		{"not-found marker", visited{raw: marker, found: true, pttl: 60000}, false, found},
		{"another program's bytes", visited{raw: []byte(`{"id":1}`), found: true, pttl: -1}, true, found},
		{"empty string", visited{raw: []byte{}, found: true, pttl: -1}, true, found},
		{"a newer aside's entry", visited{raw: newer, found: true, pttl: 60000}, true, newerFormat},
		{"an entry cut short", visited{raw: bad, found: true, pttl: 60000}, true, unreadable},
	} {
		if got := classify(tc.v, tc.offered); got != tc.want {
			t.Errorf("%s: classify = %d, want %d", tc.name, got, tc.want)
		}
	}
}
