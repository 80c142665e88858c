package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/internal/config"
)

// errProofFailed: check-proof answered no. Exit status 1.
var errProofFailed = errors.New("the proof does not hold")

// readVerifierKey takes an audit verifier key as given on the command line: the key itself
// ("name+hash+base64"), or a file holding it (alone, or as the second line of an audit key file).
func readVerifierKey(s string) (string, error) {
	if s == "" {
		return "", errors.New("no audit public key given")
	}
	b, err := os.ReadFile(s)
	if err != nil {
		if strings.Count(s, "+") == 2 && !strings.ContainsAny(s, "/\\") {
			return s, nil
		}
		return "", fmt.Errorf("audit public key: %w", err)
	}
	fields := strings.Fields(string(b))
	for i := len(fields) - 1; i >= 0; i-- {
		if !strings.HasPrefix(fields[i], "PRIVATE+KEY+") {
			return fields[i], nil
		}
	}
	return "", fmt.Errorf("audit public key: %s holds no key", s)
}

// verifierKeyOf is the key given with -audit-public-key, or else the public half of the
// configured audit key file (which verify does not create).
func verifierKeyOf(cfg config.Config, given string) (string, error) {
	if given != "" {
		return readVerifierKey(given)
	}
	b, err := os.ReadFile(cfg.AuditKeyPath())
	if err != nil {
		return "", fmt.Errorf("no -audit-public-key given and the audit key file: %w", err)
	}
	_, vkey, err := audit.ParseAuditKey(b)
	return vkey, err
}

// openCheckpoints reads a file of signed checkpoints and opens every one with vkey. One that fails
// its signature refuses the whole file: an auditor's copy that was tampered with proves nothing.
func openCheckpoints(path, vkey string) ([]audit.TreeHead, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint file: %w", err)
	}
	notes := audit.SplitCheckpoints(data)
	if len(notes) == 0 {
		return nil, fmt.Errorf("checkpoint file %s holds no checkpoint", path)
	}
	heads := make([]audit.TreeHead, 0, len(notes))
	for i, n := range notes {
		h, err := audit.OpenCheckpoint(n, vkey)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %d of %s refused: %w", i+1, path, err)
		}
		heads = append(heads, h)
	}
	return heads, nil
}

func printCheckpointReport(w io.Writer, r audit.CheckpointReport) {
	fmt.Fprintf(w, "checkpoints:   %d signed, %d matched, covering %d events\n", r.Checkpoints, r.Matched, r.Covered)
	if p := r.Problem; p != nil {
		fmt.Fprintf(w, "PROBLEM:       the log does not match a signed checkpoint (size %d, signed %s)\n", p.Checkpoint.Size, p.Checkpoint.Time.Format("2006-01-02T15:04:05Z07:00"))
		if p.From == p.To {
			fmt.Fprintf(w, "  event:       %s at ordinal %d\n", p.EventID, p.From)
		} else {
			fmt.Fprintf(w, "  events:      ordinals %d to %d (at %d: %s)\n", p.From, p.To, p.From, p.EventID)
		}
		if p.Position != 0 {
			fmt.Fprintf(w, "  in the log:  position %d, stream %s, type %s\n", p.Position, p.StreamID, p.Type)
		}
		fmt.Fprintf(w, "  detail:      %s\n", p.Detail)
		return
	}
	fmt.Fprintf(w, "checkpoints OK\n")
}

// auditProve prints an inclusion proof (-ordinal) or a consistency proof (-from) as JSON, from the
// tree in the database, for an auditor to take away.
func auditProve(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("audit prove", flag.ContinueOnError)
	ordinal := fs.Uint64("ordinal", 0, "prove that the event at this `ordinal` is in the tree")
	from := fs.Uint64("from", 0, "prove that the tree extends the tree of this `size`")
	size := fs.Uint64("size", 0, "the tree `size` to prove against (default: the latest checkpoint's)")
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	if (*ordinal == 0) == (*from == 0) {
		fmt.Fprintln(env.stderr, "idlog audit prove: give exactly one of -ordinal and -from")
		return errUsage
	}
	_, ledger, closeAll, err := openAudited(ctx, cfg, env, false)
	if err != nil {
		return err
	}
	defer closeAll()
	if *size == 0 {
		cp, ok, err := ledger.LastCheckpoint(ctx)
		if err != nil {
			return cfg.RedactError(err)
		}
		if !ok {
			return errors.New("nothing is sealed yet: run idlog audit seal")
		}
		*size = cp.Ordinal
	}
	var out any
	if *ordinal != 0 {
		out, err = ledger.InclusionProof(ctx, *ordinal, *size)
	} else {
		out, err = ledger.ConsistencyProof(ctx, *from, *size)
	}
	if err != nil {
		return cfg.RedactError(err)
	}
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// auditCheckpoint prints the latest signed checkpoint.
func auditCheckpoint(ctx context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("audit checkpoint", flag.ContinueOnError)
	cfg, err := loadConfig(fs, args, env)
	if err != nil {
		return err
	}
	_, ledger, closeAll, err := openAudited(ctx, cfg, env, false)
	if err != nil {
		return err
	}
	defer closeAll()
	cp, ok, err := ledger.LastCheckpoint(ctx)
	if err != nil {
		return cfg.RedactError(err)
	}
	if !ok || cp.Note == "" {
		return errors.New("no signed checkpoint yet: run idlog audit seal")
	}
	_, err = io.WriteString(env.stdout, cp.Note)
	return err
}

// auditCheckProof checks, without a database, that an exported event is in the tree a signed
// checkpoint vouches for. It answers yes (exit 0) or no (exit 1).
func auditCheckProof(_ context.Context, env *environment, args []string) error {
	fs := flag.NewFlagSet("audit check-proof", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	checkpoint := fs.String("checkpoint", "", "`file` of the signed checkpoint (the last one, if it holds several)")
	key := fs.String("public-key", "", "the audit public `key`, or a file holding it")
	event := fs.String("event", "", "`file` holding the event as idlog events export wrote it (one line)")
	proofFile := fs.String("proof", "", "`file` of the inclusion proof as idlog audit prove or the HTTP API gave it")
	fs.Usage = func() {
		fmt.Fprint(env.stderr, "Usage: idlog audit check-proof -checkpoint FILE -public-key KEY -event FILE -proof FILE\n\n"+
			"Checks, with no database, that the event is in the log the signed checkpoint vouches for.\n"+
			"Prints yes (exit status 0) or no and why (exit status 1).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if *checkpoint == "" || *key == "" || *event == "" || *proofFile == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	vkey, err := readVerifierKey(*key)
	if err != nil {
		return err
	}
	cpData, err := os.ReadFile(*checkpoint)
	if err != nil {
		return err
	}
	notes := audit.SplitCheckpoints(cpData)
	if len(notes) == 0 {
		return fmt.Errorf("%s holds no checkpoint", *checkpoint)
	}
	line, err := os.ReadFile(*event)
	if err != nil {
		return err
	}
	pb, err := os.ReadFile(*proofFile)
	if err != nil {
		return err
	}
	var p audit.InclusionProof
	if err := json.Unmarshal(pb, &p); err != nil {
		return fmt.Errorf("proof: %w", err)
	}
	// Of a file of several checkpoints, the one the proof was made for.
	note := notes[len(notes)-1]
	for _, n := range notes {
		if h, err := audit.OpenCheckpoint(n, vkey); err == nil && h.Size == p.TreeSize {
			note = n
		}
	}
	head, err := audit.CheckInclusion(note, vkey, line, p)
	if err != nil {
		fmt.Fprintf(env.stdout, "no: %v\n", err)
		return errProofFailed
	}
	fmt.Fprintf(env.stdout, "yes: the event at ordinal %d is in the log of %d events signed by %s at %s, root %s\n",
		p.Ordinal, head.Size, head.Origin, head.Time.Format("2006-01-02T15:04:05Z07:00"), head.Root)
	return nil
}
