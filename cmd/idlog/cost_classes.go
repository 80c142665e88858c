package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/projections"
)

// costClassesEvery is how often serve reads the password cost classes present. A class new in
// between (an import while serve runs) is met by the hasher at its first sign-in anyway.
const costClassesEvery = 30 * time.Second

// costClassesKeeper feeds a password hasher the cost classes of the imported hashes still
// stored, read from the password classes view, so that every failed sign-in costs their work.
type costClassesKeeper struct {
	stop context.CancelFunc
	done sync.WaitGroup
}

// keepCostClasses reads the classes once (the view may lag behind the log at start: classes a
// sign-in meets are added as it meets them), then every costClassesEvery until close.
func keepCostClasses(view *projections.PasswordClassesView, hasher *auth.PasswordHasher, log *slog.Logger) *costClassesKeeper {
	ctx, stop := context.WithCancel(context.Background())
	k := &costClassesKeeper{stop: stop}
	read := func() {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		classes, err := view.Classes(rctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("cannot read the password cost classes; failed sign-ins keep the classes known so far", "error", err)
			}
			return
		}
		hasher.SetCostClasses(classes)
	}
	read()
	if len(hasher.CostClasses()) > 0 {
		log.Info("failed sign-ins do the work of the imported password hashes' cost classes too", "classes", len(hasher.CostClasses()))
	}
	k.done.Add(1)
	go func() {
		defer k.done.Done()
		t := time.NewTicker(costClassesEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				read()
			}
		}
	}()
	return k
}

func (k *costClassesKeeper) close() {
	if k != nil {
		k.stop()
		k.done.Wait()
	}
}
