// Package geoiptest writes small MaxMind-format databases for tests, with maxmind/mmdbwriter: a
// real database that authz.GeoIP reads as it reads GeoLite2-Country.
package geoiptest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Network is a network and where it is.
type Network struct {
	CIDR, Country, Continent string
}

// Write writes a GeoLite2-Country-shaped database of the networks into a temporary directory and
// returns its path.
func Write(t testing.TB, networks ...Network) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range networks {
		_, ipnet, err := net.ParseCIDR(n.CIDR)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{
			"country":   mmdbtype.Map{"iso_code": mmdbtype.String(n.Country)},
			"continent": mmdbtype.Map{"code": mmdbtype.String(n.Continent)},
		}
		if err := w.Insert(ipnet, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}
