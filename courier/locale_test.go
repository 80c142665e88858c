package courier_test

import (
	"context"
	"mime"
	"strings"
	"testing"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/courier"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/internal/smtptest"
)

// TestGermanLocale: German templates are embedded; a user whose profile locale is de-DE gets the
// reset message in German (de), whose code resets the password, with no override directory.
func TestGermanLocale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, backends()[0])
	srv := smtptest.Start(t)
	c := e.courier(t, e.smtpSender(t, srv), nil)

	const addr = "greta@example.com"
	res, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: addr, Password: "Correct-Horse-9-battery"})
	if err != nil {
		t.Fatal(err)
	}
	locale := "de-DE"
	if _, err := e.app.Commands.CreateProfile.Handle(ctx, commands.CreateProfile{UID: domain.UserID(res.Account.UID), Profile: domain.ProfilePatch{Locale: &locale}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Commands.RequestPasswordReset.Handle(ctx, commands.RequestPasswordReset{Email: addr}); err != nil {
		t.Fatal(err)
	}
	drain(t, c)
	m := lastTo(t, srv, addr, commands.NotifyPasswordReset)
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Mail.Header.Get("Subject"))
	if subject != "Setzen Sie Ihr Passwort zurück" || !strings.Contains(m.text, "oder mit diesem Code:") {
		t.Fatalf("the reset message is not in German: %q\n%s", subject, m.text)
	}
	const next = "Neues-Passwort-42-lang"
	if _, err := e.app.Commands.ResetPassword.Handle(ctx, commands.ResetPassword{Token: codeIn(t, m.text), Password: next, ConfirmPassword: next}); err != nil {
		t.Fatalf("the German message's code: %v", err)
	}
	// A locale with no templates of its own falls back to English.
	tpl, err := courier.NewTemplates("", "https://app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := tpl.Render(commands.NotifyPasswordReset, courier.Payload{To: addr, Token: "T", Locale: "ja-JP"})
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "Reset your password" {
		t.Errorf("ja-JP: subject %q, want the English one", msg.Subject)
	}
}
