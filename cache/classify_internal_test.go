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
	newer[1] = envelope.MaxVersion + 1
	bad := []byte{envelope.Magic, envelope.Version} // an entry cut short
	gen3 := envelope.EncodeGen(envelope.Value, false, time.Time{}, 3, []byte("v"))
	marker3 := envelope.EncodeGen(envelope.NotFound, false, time.Time{}, 3, nil)
	oom := visited{err: errors.New("OOM command not allowed when used memory > 'maxmemory'."), refused: true}
	for _, tc := range []struct {
		name    string
		v       visited
		offered bool
		gen     uint64 // the namespace's, read by the visit
		want    verdict
	}{
		{"connection lost", failedVisit(io.EOF), true, 0, unavailable},
		{"budget ran out", failedVisit(errors.Join(ErrUnavailable, io.ErrUnexpectedEOF)), false, 0, unavailable},
		{"lease refused", oom, true, 0, refusedLease},
		{"plain read refused", oom, false, 0, refusedRead},
		{"changed between round trips", visited{changed: true}, true, 0, changedMeanwhile},
		{"missing, leased to us", visited{pttl: 5000}, true, 0, leasedToUs},
		{"missing, no lease offered", visited{pttl: -2}, false, 0, missing},
		{"plain lease key held", visited{lease: lease, pttl: 4000}, true, 0, leased},
		{"plain lease key without expiry", visited{lease: lease, pttl: -1}, true, 0, notALease},
		{"lease in the key", visited{raw: lease, found: true, pttl: 4000}, true, 0, leased},
		{"lease in the key without expiry", visited{raw: lease, found: true, pttl: -1}, true, 0, unreadable},
		{"value", visited{raw: value, found: true, pttl: 60000}, true, 0, found},
		{"not-found marker", visited{raw: marker, found: true, pttl: 60000}, false, 0, found},
		{"another program's bytes", visited{raw: []byte(`{"id":1}`), found: true, pttl: -1}, true, 0, found},
		{"empty string", visited{raw: []byte{}, found: true, pttl: -1}, true, 0, found},
		{"a newer aside's entry", visited{raw: newer, found: true, pttl: 60000}, true, 0, newerFormat},
		{"an entry cut short", visited{raw: bad, found: true, pttl: 60000}, true, 0, unreadable},
		{"a value of the generation read", visited{raw: gen3, found: true, pttl: 60000}, true, 3, found},
		{"a value of a newer generation", visited{raw: gen3, found: true, pttl: 60000}, true, 2, found},
		{"a value of an older generation", visited{raw: gen3, found: true, pttl: 60000}, true, 4, cleared},
		{"a value without a generation, after a Clear", visited{raw: value, found: true, pttl: 60000}, true, 1, cleared},
		{"a marker of an older generation", visited{raw: marker3, found: true, pttl: 60000}, false, 4, cleared},
		{"a lease, after a Clear", visited{raw: lease, found: true, pttl: 4000}, true, 9, leased},
		{"another program's bytes, after a Clear", visited{raw: []byte(`{"id":1}`), found: true, pttl: -1}, true, 9, found},
	} {
		if got := classify(tc.v, tc.offered, tc.gen); got != tc.want {
			t.Errorf("%s: classify = %d, want %d", tc.name, got, tc.want)
		}
	}
}
