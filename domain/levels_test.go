package domain_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/idlog/idlog/domain"
)

func TestLevels(t *testing.T) {
	t.Parallel()
	def := domain.DefaultLevels()
	if got := def.String(); got != "email=verified,phone=verified,document=verified" {
		t.Errorf("DefaultLevels = %s, want Barong's ladder", got)
	}
	if def.IsZero() || !(domain.Levels{}).IsZero() {
		t.Error("IsZero: the default ladder is configured, the zero one is not")
	}
	reqs := def.Requirements()
	reqs[0].Key = "changed"
	if def.Requirements()[0].Key != "email" {
		t.Error("Requirements gave away the ladder's own slice")
	}

	for _, tc := range []struct {
		in      string
		want    string
		wantErr error
	}{
		{in: "email=verified,phone=verified,document=verified", want: "email=verified,phone=verified,document=verified"},
		{in: " email=verified , kyc=Approved-1 ", want: "email=verified,kyc=Approved-1"},
		{in: "", want: ""},
		{in: "email", wantErr: domain.ErrLevelsInvalid},
		{in: "email=verified,email=done", wantErr: domain.ErrLevelsInvalid},
		{in: "Email=verified", wantErr: domain.ErrLabelKeyInvalid},
		{in: "email=ok", wantErr: domain.ErrLabelValueInvalid},
		{in: "email=verified,,phone=verified", wantErr: domain.ErrLevelsInvalid},
	} {
		l, err := domain.ParseLevels(tc.in)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("ParseLevels(%q) = %v, %v; want %v", tc.in, l, err, tc.wantErr)
			}
			continue
		}
		if err != nil || l.String() != tc.want || l.IsZero() {
			t.Errorf("ParseLevels(%q) = %q, %v; want %q", tc.in, l, err, tc.want)
		}
	}

	l, err := domain.NewLevels(domain.LevelRequirement{Key: "email", Value: "verified", Description: "clicked the link"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []domain.LevelRequirement{{Key: "email", Value: "verified", Description: "clicked the link"}}; !reflect.DeepEqual(l.Requirements(), want) {
		t.Errorf("Requirements = %+v, want %+v", l.Requirements(), want)
	}
	if _, err := domain.NewLevels(domain.LevelRequirement{Key: "email", Value: "verified", Description: "a\x00b"}); !errors.Is(err, domain.ErrLabelDescriptionInvalid) {
		t.Errorf("a description with NUL: %v", err)
	}
}
