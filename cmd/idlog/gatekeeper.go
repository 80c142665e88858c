package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/authz"
	"github.com/idlog/idlog/internal/config"
)

// startGatekeeper adds the gateway's authz endpoint, permissions and restrictions to the account
// routes: a decision engine that follows the access policy's stream until ctx ends, and a signer
// of upstream tokens with the access tokens' key (so the JWKS verifies them) but an audience of
// their own (so they are never taken for idlog access tokens) and a short lifetime. The returned
// function releases the GeoIP database.
func startGatekeeper(ctx context.Context, cfg config.Config, log *slog.Logger, a *api.Accounts) (func(), error) {
	g := cfg.Accounts.Gatekeeper
	key, err := auth.LoadOrCreateSigningKey(cfg.SigningKeyPath())
	if err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	upstream, err := auth.NewSigner(key, auth.SignerConfig{
		Issuer: cfg.Accounts.TokenIssuer, Audience: UpstreamAudience(cfg.Accounts.TokenAudience), TTL: g.UpstreamTokenTTL,
	})
	if err != nil {
		return nil, err
	}
	opts := authz.Options{Source: a.App.PolicyStream, Logger: log}
	closeGeo := func() {}
	if g.GeoIPDB != "" {
		geo, err := authz.OpenGeoIP(g.GeoIPDB)
		if err != nil {
			return nil, err
		}
		opts.Geo, closeGeo = geo, func() { _ = geo.Close() }
	}
	engine := authz.NewEngine(opts)
	if err := engine.Refresh(ctx); err != nil {
		closeGeo()
		return nil, err
	}
	go engine.Run(ctx)
	a.Gatekeeper = &api.Gatekeeper{Engine: engine, Upstream: upstream, PublicPaths: g.PublicPathList()}
	log.Info("gatekeeper ready", "upstream_audience", UpstreamAudience(cfg.Accounts.TokenAudience), "geoip", g.GeoIPDB != "")
	return closeGeo, nil
}

// UpstreamAudience is the audience of the tokens the authz endpoint gives upstream services.
func UpstreamAudience(audience string) string { return audience + ":upstream" }
