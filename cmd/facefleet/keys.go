package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/awsconfig"
	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/fileblob"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
	"github.com/facefleet/facefleet/internal/settings"
)

const keysUsage = `usage: facefleet keys create -role admin|recognize [-name LABEL] [-rate R -burst B] [store flags]
       facefleet keys list [store flags]
       facefleet keys revoke [store flags] ID

Keys live (hashed) in the data store: <-data>/outputs locally, the output bucket
on AWS (-output-bucket or FACEFLEET_OUTPUT_BUCKET). create prints the key once on
stdout; only its SHA-256 is stored.`

// openKeyStore opens the keys' store: the output bucket when -output-bucket
// (FACEFLEET_OUTPUT_BUCKET) is set, else <-data>/outputs.
func openKeyStore(ctx context.Context, v *settings.Values) (*apikeys.Store, string, error) {
	var b blob.Store
	where := ""
	if bucket := v.String(settings.OutputBucket); bucket != "" {
		c, err := awsconfig.Load(ctx, awsconfig.FromSettings(v))
		if err != nil {
			return nil, "", err
		}
		s, err := s3blob.New(c.S3(), bucket)
		if err != nil {
			return nil, "", err
		}
		b, where = s, "s3://"+bucket+"/"+apikeys.Prefix
	} else {
		dir := filepath.Join(v.String(settings.Data), "outputs")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, "", fmt.Errorf("create %s: %w", dir, err)
		}
		s, err := fileblob.New(dir)
		if err != nil {
			return nil, "", err
		}
		b, where = s, filepath.Join(dir, apikeys.Prefix)
	}
	return apikeys.NewStore(b, apikeys.Options{CacheTTL: -1}), where, nil
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, keysUsage)
		if len(args) == 0 {
			return errors.New("name a subcommand: create, list or revoke")
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("keys "+sub, keysUsage, stderr)
	resolve := bindSettings(settings.Keys, fs)
	open := func() (*apikeys.Store, string, error) {
		v, err := resolve()
		if err != nil {
			return nil, "", err
		}
		return openKeyStore(ctx, v)
	}
	switch sub {
	case "create":
		role := fs.String("role", "", "admin (enroll, delete, read the gallery, recognize) or recognize (recognition only)")
		name := fs.String("name", "", "a label to tell keys apart in `keys list`")
		rate := fs.Float64("rate", 0, "this key's requests per second (0: the web tier's -key-rate)")
		burst := fs.Int("burst", 0, "this key's burst (with -rate; 0: twice -rate)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments %q", fs.Args())
		}
		r, err := apikeys.ParseRole(*role)
		if err != nil {
			return fmt.Errorf("-role: %w", err)
		}
		if *rate > 0 && *burst <= 0 {
			*burst = max(1, int(2**rate))
		}
		st, where, err := open()
		if err != nil {
			return err
		}
		key, rec, err := st.Create(ctx, r, *name, *rate, *burst)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, key)
		fmt.Fprintf(stderr, "created %s key %s in %s; the key above is shown only now (only its SHA-256 is stored)\n", rec.Role, rec.ID, where)
		return nil
	case "list":
		if err := fs.Parse(args); err != nil {
			return err
		}
		st, _, err := open()
		if err != nil {
			return err
		}
		list, err := st.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROLE\tCREATED\tRATE\tBURST\tNAME")
		for _, k := range list {
			rate, burst := "default", "default"
			if k.Rate > 0 {
				rate, burst = strconv.FormatFloat(k.Rate, 'g', -1, 64), strconv.Itoa(k.Burst)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Role, k.Created.Format(time.RFC3339), rate, burst, k.Name)
		}
		return tw.Flush()
	case "revoke":
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("name one key id to revoke (see `facefleet keys list`)")
		}
		st, _, err := open()
		if err != nil {
			return err
		}
		if err := st.Revoke(ctx, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked %s; web tiers stop accepting it within their -key-cache-ttl\n", fs.Arg(0))
		return nil
	}
	return fmt.Errorf("unknown subcommand %q: use create, list or revoke", sub)
}
