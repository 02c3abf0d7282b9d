package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// printer writes the text form of reports.
type printer struct {
	w io.Writer
}

func (p printer) line(label, format string, args ...any) {
	fmt.Fprintf(p.w, "  %-13s %s\n", label+":", fmt.Sprintf(format, args...))
}

// block writes lines of text indented under the labels.
func (p printer) block(text string) {
	for l := range strings.SplitSeq(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(p.w, "      %s\n", l)
	}
}

func (p printer) report(r *report) {
	fmt.Fprintln(p.w, r.Key)
	switch r.Type {
	case "none":
		p.line("type", "none (no such key)")
	case "string":
		p.line("type", "string, %s", bytesOf(r.Size))
	default:
		p.line("type", "%s", r.Type)
	}
	if r.Type != "none" && r.Type != "?" {
		p.line("hard expiry", "%s", p.expiry(r.PTTL, r.ExpiresAt))
	}
	switch r.Role {
	case "lease key":
		p.line("role", "lease key of %s (plain mode, namespace %s): a load holds %s", r.ValueKey, r.Namespace, r.ValueKey)
	case "tag index":
		p.line("role", "tag index of tag %q in namespace %s", r.Tag, r.Namespace)
	}
	if e := r.Entry; e != nil {
		p.line("entry", "aside entry, format version %d", e.Version)
		switch e.Kind {
		case kindLease:
			p.line("kind", "lease: a load holds this key")
			p.line("lease token", "%s", e.LeaseToken)
		case kindNotFound:
			p.line("kind", "not-found marker: the loader found nothing; reads miss until it expires")
		default:
			p.line("kind", "value")
		}
		var flags []string
		if e.Compressed {
			flags = append(flags, "compressed")
		}
		if e.Stale {
			flags = append(flags, "stale (past its soft expiry, refresh claimed)")
		}
		switch {
		case len(flags) > 0:
			p.line("flags", "%s", strings.Join(flags, ", "))
		case e.Kind == kindValue:
			p.line("flags", "none")
		}
		if e.Generation != 0 {
			p.line("generation", "%d (written after the namespace's Clear of that generation)", e.Generation)
		}
		if e.SoftIn != nil {
			p.line("soft expiry", "%s, at %s", relative(time.Duration(*e.SoftIn)*time.Millisecond), e.SoftExpiry)
		} else if e.Kind == kindValue {
			p.line("soft expiry", "none")
		}
	} else if r.Plain {
		p.line("entry", "plain value (no envelope)")
	}
	if r.Read > 0 {
		p.line("read", "first %d of %d bytes", r.Read, r.Size)
	}
	if pl := r.Payload; pl != nil {
		p.payload(pl)
	}
	if r.Count != nil {
		p.line("members", "%d (SCARD)", *r.Count)
		if int64(len(r.Members)) < *r.Count {
			p.line("first", "%d members:", len(r.Members))
		}
		for _, m := range r.Members {
			p.block(strconv.Quote(m))
		}
	}
	if lk := r.LeaseKey; lk != nil {
		p.line("lease key", "%s exists (plain mode): a load holds this key; %s", lk.Key, p.expiry(lk.PTTL, ""))
		if lk.Token != "" {
			p.line("lease token", "%s", lk.Token)
		}
	}
	if r.Unreadable != "" {
		p.line("unreadable", "%s", r.Unreadable)
	}
}

func (p printer) payload(pl *payloadInfo) {
	what := map[string]string{
		"msgpack": "MessagePack",
		"json":    "JSON",
		"string":  "UTF-8 text",
		"binary":  "binary",
		"empty":   "empty",
		"partial": "not decoded (over -max-bytes)",
	}[pl.Format]
	if pl.Compression != "" {
		what += ", codec.Compress " + pl.Compression
	}
	p.line("payload", "%s, %s", what, bytesOf(int64(pl.Size)))
	switch {
	case pl.JSON != nil:
		var buf bytes.Buffer
		if err := json.Indent(&buf, pl.JSON, "", "  "); err != nil {
			p.block(string(pl.JSON))
		} else {
			p.block(buf.String())
		}
	case pl.Format == "string":
		p.block(strconv.Quote(pl.Text))
	case pl.Text != "":
		p.block(pl.Text)
	case pl.Hex != "":
		for i := 0; i < len(pl.Hex); i += 64 {
			p.block(pl.Hex[i:min(i+64, len(pl.Hex))])
		}
	}
	if pl.Truncated {
		p.block("... (truncated)")
	}
}

// expiry describes a PTTL.
func (p printer) expiry(pttl int64, at string) string {
	switch {
	case pttl == -1:
		return "none (no TTL)"
	case pttl < 0:
		return "gone"
	case at == "":
		return "expires " + relative(time.Duration(pttl)*time.Millisecond)
	}
	return fmt.Sprintf("%s, at %s", relative(time.Duration(pttl)*time.Millisecond), at)
}

// relative says how far an instant is from now: "in 4m59.9s" or "1.2s ago".
func relative(d time.Duration) string {
	d = d.Round(time.Millisecond)
	if d < 0 {
		return (-d).String() + " ago"
	}
	return "in " + d.String()
}

func bytesOf(n int64) string {
	if n == 1 {
		return "1 byte"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
