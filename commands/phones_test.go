package commands_test

import (
	"errors"
	"testing"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

func TestParsePhoneNumber(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, e164, region string }{
		{"+33 6 12 34 56 78", "+33612345678", "FR"},
		{"33612345678", "+33612345678", "FR"}, // Barong's clients may leave the + out
		{" +1 (650) 253-0000 ", "+16502530000", "US"},
		{"+49 151 12345678", "+4915112345678", "DE"},
		{"+44 20 7183 8750", "+442071838750", "GB"},
	} {
		e164, region, err := commands.ParsePhoneNumber(tc.in)
		if err != nil || e164 != tc.e164 || region != tc.region {
			t.Errorf("ParsePhoneNumber(%q) = %q, %q, %v; want %q, %q", tc.in, e164, region, err, tc.e164, tc.region)
		}
	}
	for _, bad := range []string{"", "+", "+1 555", "0612345678", "+33 6 12", "+999 1234567", "phone", "+33 6 12 34 56 78 90 12 34 56 78 90 12 34 56 78 90 12 34 56 78 90 12 34 56 78"} {
		if got, _, err := commands.ParsePhoneNumber(bad); !errors.Is(err, domain.ErrPhoneInvalid) {
			t.Errorf("ParsePhoneNumber(%q) = %q, %v; want ErrPhoneInvalid", bad, got, err)
		}
	}
}
