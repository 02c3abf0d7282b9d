// Command aside-inspect shows what aside keeps in Redis: for a key, whether
// it holds an aside entry (a value, a not-found marker or a load's lease),
// its soft and hard expiry and its value decoded; for a namespace, every key
// it has, with its kind.
//
// Usage:
//
//	aside-inspect [-url redis://host:port] [-json] get <key>...
//	aside-inspect [-url redis://host:port] [-json] scan <namespace> [-match PATTERN | -prefix PREFIX] [-limit N]
//
// The URL defaults to $REDIS_URL, then redis://localhost:6379. It only reads:
// TYPE, PTTL, STRLEN, GETRANGE, SCARD, SSCAN, SCAN and ROLE.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

const usage = `usage:
  aside-inspect [flags] get <key>...
  aside-inspect [flags] scan <namespace> [-match PATTERN | -prefix PREFIX] [-limit N]

get describes each key: its type and expiry; for a string whether it is an
aside entry, its kind (value, not-found marker, lease), flags and soft
expiry, and its payload decoded (MessagePack and JSON as JSON, text quoted,
other bytes in hex); for a set (a tag index) its size and first members.

scan lists the keys of a namespace on every primary: "<ns>:*" (or the keys
whose part after "<ns>:" matches -match, a Redis glob, or starts with
-prefix, taken literally), the lease keys "<ns>#lease{...}" of plain mode,
and without -match or -prefix the tag indexes "<ns>#tag:*".

flags (before or after the subcommand):
`

// usageError is an error in the command line.
type usageError string

func (e usageError) Error() string { return string(e) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "aside-inspect:", err)
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "run aside-inspect -h for help")
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// config is what the flags set.
type config struct {
	url      string
	json     bool
	maxBytes int64
	members  int
	match    string
	prefix   string
	limit    int
}

func (c *config) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.url, "url", c.url, "Redis URL (rueidis.ParseURL: redis://, rediss://, unix://; ?addr= adds cluster nodes)")
	fs.BoolVar(&c.json, "json", c.json, "print one JSON object a line")
	fs.Int64Var(&c.maxBytes, "max-bytes", c.maxBytes, "get reads at most this many bytes of a string")
	fs.IntVar(&c.members, "members", c.members, "get lists at most this many members of a set")
	fs.StringVar(&c.match, "match", c.match, "scan: Redis glob over the part of keys after \"<namespace>:\"")
	fs.StringVar(&c.prefix, "prefix", c.prefix, "scan: literal start of the part of keys after \"<namespace>:\"")
	fs.IntVar(&c.limit, "limit", c.limit, "scan: list at most this many keys")
	return fs
}

func helpText() string {
	var b strings.Builder
	b.WriteString(usage)
	fs := (&config{maxBytes: 16 << 20, members: 20, limit: 1000, url: "$REDIS_URL or redis://localhost:6379"}).flags("aside-inspect")
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return b.String()
}

// parse reads flags anywhere among args (up to a "--", after which
// everything is an argument) and returns the arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for i, a := range args {
		if a == "--" {
			rest = args[i+1:]
			args = args[:i]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return append(pos, rest...), nil
}

// run is the command: args are its arguments without the program name.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := config{url: os.Getenv("REDIS_URL"), maxBytes: 16 << 20, members: 20, limit: 1000}
	if cfg.url == "" {
		cfg.url = "redis://localhost:6379"
	}
	pos, err := parse(cfg.flags("aside-inspect"), args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, err := io.WriteString(stdout, helpText())
		return err
	case err != nil:
		return usageError(err.Error())
	case len(pos) == 0:
		return usageError("no subcommand: get or scan")
	}
	sub, pos := pos[0], pos[1:]
	switch {
	case sub != "get" && sub != "scan":
		return usageError(fmt.Sprintf("unknown subcommand %q: get or scan", sub))
	case sub == "get" && len(pos) == 0:
		return usageError("get: no key")
	case sub == "scan" && len(pos) != 1:
		return usageError("scan: one namespace")
	case cfg.maxBytes < 64:
		return usageError("-max-bytes: at least 64")
	case cfg.members < 0 || cfg.limit <= 0:
		return usageError("-members and -limit: positive")
	case sub == "get" && (cfg.match != "" || cfg.prefix != ""):
		return usageError("-match and -prefix are flags of scan")
	}
	var scanOpts scanOptions
	if sub == "scan" {
		scanOpts = scanOptions{ns: pos[0], match: cfg.match, prefix: cfg.prefix, limit: cfg.limit}
		if _, _, err := scanPatterns(scanOpts); err != nil {
			return err
		}
	}

	client, err := connect(cfg.url)
	if err != nil {
		return err
	}
	defer client.Close()
	in := &inspector{client: client, now: time.Now, maxBytes: cfg.maxBytes, members: cfg.members}

	if sub == "get" {
		p := printer{w: stdout}
		for i, key := range pos {
			r := in.get(ctx, key)
			if cfg.json {
				err = writeJSONLine(stdout, r)
			} else {
				if i > 0 {
					fmt.Fprintln(stdout)
				}
				p.report(r)
			}
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return nil
	}

	rows, full, err := in.scan(ctx, scanOpts)
	if err != nil {
		return err
	}
	if !cfg.json {
		return printRows(stdout, rows, full, cfg.limit)
	}
	for _, r := range rows {
		if err := writeJSONLine(stdout, r); err != nil {
			return err
		}
	}
	return nil
}

// connect opens a client of url that only reads: no client-side cache, so
// no tracking.
func connect(url string) (rueidis.Client, error) {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		// The URL may hold a password: never repeat it.
		return nil, usageError("-url: " + strings.ReplaceAll(err.Error(), url, "<url>"))
	}
	if opt.TLSConfig != nil && opt.TLSConfig.InsecureSkipVerify {
		return nil, usageError("-url: skip_verify turns off TLS verification; refused")
	}
	opt.DisableCache = true
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %s", strings.Join(opt.InitAddress, ", "), strings.ReplaceAll(err.Error(), url, "<url>"))
	}
	return client, nil
}
