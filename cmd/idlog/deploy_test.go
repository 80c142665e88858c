package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// docker-compose.yml on PostgreSQL waits for no EventStoreDB, publishes neither PostgreSQL nor
// NATS on the host's standard ports, and checks idlog's health with idlog healthcheck; the
// Dockerfile stamps a version and has a HEALTHCHECK. (No Docker in the test: the files' contract.)
func TestDeployFiles(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Profiles    []string       `yaml:"profiles"`
			Ports       []string       `yaml:"ports"`
			DependsOn   map[string]any `yaml:"depends_on"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
			Build struct {
				Args map[string]string `yaml:"args"`
			} `yaml:"build"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"postgres", "nats"} {
		for _, p := range compose.Services[name].Ports {
			if strings.HasSuffix(p, ":5432:5432") || strings.HasSuffix(p, ":4222:4222") || p == "5432:5432" || p == "4222:4222" {
				t.Errorf("%s publishes %s on the host's standard port", name, p)
			}
		}
	}
	if es := compose.Services["eventstoredb"]; len(es.Profiles) == 0 {
		t.Error("eventstoredb starts by default; want it behind a profile")
	}
	for _, name := range []string{"idlog", "idlog-2"} {
		s := compose.Services[name]
		if _, waits := s.DependsOn["eventstoredb"]; waits {
			t.Errorf("%s waits for EventStoreDB while its store is PostgreSQL", name)
		}
		if !slices.Contains(s.Healthcheck.Test, "healthcheck") {
			t.Errorf("%s healthcheck %v, want idlog healthcheck", name, s.Healthcheck.Test)
		}
		if s.Build.Args["VERSION"] == "" {
			t.Errorf("%s builds with no VERSION argument", name)
		}
	}
	docker, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ARG VERSION", "-X main.buildVersion=${VERSION}", `HEALTHCHECK`, `"healthcheck"]`} {
		if !strings.Contains(string(docker), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
