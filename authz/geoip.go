package authz

import (
	"fmt"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// GeoIP locates addresses with a MaxMind-format database (GeoLite2-Country, GeoIP2-City, or any
// database with country.iso_code and continent.code). It is safe for concurrent use.
type GeoIP struct{ db *maxminddb.Reader }

// OpenGeoIP opens the database at path.
func OpenGeoIP(path string) (*GeoIP, error) {
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("authz: open GeoIP database %s: %w", path, err)
	}
	return &GeoIP{db: db}, nil
}

// Close releases the database.
func (g *GeoIP) Close() error { return g.db.Close() }

type geoRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Continent struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"continent"`
}

// Locate implements Locator: empty codes for an address the database does not know.
func (g *GeoIP) Locate(ip netip.Addr) (Location, error) {
	var r geoRecord
	if err := g.db.Lookup(ip.Unmap()).Decode(&r); err != nil {
		return Location{}, fmt.Errorf("authz: locate %s: %w", ip, err)
	}
	return Location{Country: r.Country.ISOCode, Continent: r.Continent.Code}, nil
}
