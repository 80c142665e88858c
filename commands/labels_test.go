package commands_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

func labelsOf(a commands.Account) string {
	s := ""
	for _, l := range a.Labels {
		s += fmt.Sprintf("%s=%s/%s ", l.Key, l.Value, l.Scope)
	}
	return s
}

func TestLabelsAndLevels(t *testing.T) {
	t.Parallel()
	e := newEnv(t, commands.Config{})
	ctx := t.Context()
	uid := domain.UserID(e.register(t, "labels@example.com", "").Account.UID)
	admin := commands.Meta{ActorUID: "ID00000000AD", ActorRole: "admin"}
	self := commands.Meta{ActorUID: string(uid), ActorRole: "member"}

	// Confirming the email adds email=verified, level 1, and new tokens carry it.
	r, err := e.app.Commands.VerifyEmail.Handle(ctx, commands.VerifyEmail{Token: e.mail.last(t, commands.NotifyEmailConfirmation, "labels@example.com")})
	if err != nil || r.Account.Level != 1 || labelsOf(r.Account) != "email=verified/private " {
		t.Fatalf("verify email = %+v, %v; want level 1 with email=verified", r.Account, err)
	}
	claims, err := e.signer.Verify(e.signIn(t, "labels@example.com", "").Token)
	if err != nil || claims.Level != 1 {
		t.Errorf("token level = %d, %v; want 1", claims.Level, err)
	}

	// A member never touches a private label.
	_, err = e.app.Commands.AddLabel.Handle(ctx, commands.AddLabel{Meta: self, UID: uid, By: domain.ActorUser, Key: "phone", Value: "verified", Scope: "private"})
	wantErr(t, "member adds a private label", err, domain.ErrLabelPrivate)
	_, err = e.app.Commands.UpdateLabel.Handle(ctx, commands.UpdateLabel{Meta: self, UID: uid, By: domain.ActorUser, Key: "email", Value: "forged"})
	wantErr(t, "member changes a private key", err, domain.ErrLabelPrivate)
	_, err = e.app.Commands.RemoveLabel.Handle(ctx, commands.RemoveLabel{Meta: self, UID: uid, By: domain.ActorUser, Key: "email", Scope: "private"})
	wantErr(t, "member removes a private label", err, domain.ErrLabelPrivate)
	_, err = e.app.Commands.AddLabel.Handle(ctx, commands.AddLabel{Meta: self, UID: uid, By: domain.ActorUser, Key: "phone", Value: "verified", Scope: "secret"})
	wantErr(t, "unknown scope", err, domain.ErrLabelScopeInvalid)

	// A member's own public labels; the scope defaults to public.
	r, err = e.app.Commands.AddLabel.Handle(ctx, commands.AddLabel{Meta: self, UID: uid, By: domain.ActorUser, Key: "nickname", Value: "ally"})
	if err != nil || r.Account.Level != 1 {
		t.Fatalf("member adds a public label: %+v, %v", r.Account, err)
	}
	r, err = e.app.Commands.UpdateLabel.Handle(ctx, commands.UpdateLabel{Meta: self, UID: uid, By: domain.ActorUser, Key: "nickname", Value: "ally"})
	if err != nil || r.Position != 0 {
		t.Errorf("setting the same value = %+v, %v; want success with nothing appended", r, err)
	}

	// Administrators move the level.
	r, err = e.app.Commands.AddLabel.Handle(ctx, commands.AddLabel{Meta: admin, UID: uid, By: domain.ActorAdmin, Key: "document", Value: "verified", Scope: "private"})
	if err != nil || r.Account.Level != 1 {
		t.Fatalf("document before phone: %+v, %v; want level 1 still", r.Account, err)
	}
	_, err = e.app.Commands.UpdateLabel.Handle(ctx, commands.UpdateLabel{Meta: admin, UID: uid, By: domain.ActorAdmin, Key: "phone", Value: "verified", Scope: "private"})
	wantErr(t, "update a missing label", err, domain.ErrLabelNotFound)
	r, err = e.app.Commands.UpdateLabel.Handle(ctx, commands.UpdateLabel{Meta: admin, UID: uid, By: domain.ActorAdmin, Key: "phone", Value: "verified", Scope: "private", CreateMissing: true})
	if err != nil || r.Account.Level != 3 {
		t.Fatalf("phone with replace: %+v, %v; want level 3", r.Account, err)
	}
	r, err = e.app.Commands.RemoveLabel.Handle(ctx, commands.RemoveLabel{Meta: admin, UID: uid, By: domain.ActorAdmin, Key: "phone", Scope: "private"})
	if err != nil || r.Account.Level != 1 {
		t.Fatalf("remove phone: %+v, %v; want level 1", r.Account, err)
	}
	_, err = e.app.Commands.AddLabel.Handle(ctx, commands.AddLabel{Meta: admin, UID: "ID00000000FF", By: domain.ActorAdmin, Key: "phone", Value: "verified", Scope: "private"})
	wantErr(t, "label an unknown user", err, commands.ErrUserNotFound)

	got := types(e.events(t, string(uid)))
	want := []string{"UserRegistered", "WalletCredited", "EmailVerificationRequested",
		"EmailVerified", "LabelAdded", "LevelChanged", "SessionStarted", "LabelAdded", "LabelAdded",
		"LabelAdded", "LevelChanged", "LabelRemoved", "LevelChanged"}
	if !slices.Equal(got, want) {
		t.Errorf("events %v\nwant   %v", got, want)
	}
	claims, err = e.signer.Verify(e.signIn(t, "labels@example.com", "").Token)
	if err != nil || claims.Level != 1 {
		t.Errorf("token level after the removal = %d, %v; want 1", claims.Level, err)
	}
}

func TestConfiguredLevels(t *testing.T) {
	t.Parallel()
	ladder, err := domain.ParseLevels("email=verified,kyc=approved")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, commands.Config{Streams: commands.StreamsConfig{Levels: ladder}})
	ctx := t.Context()
	r, err := e.app.Commands.RegisterUser.Handle(ctx, commands.RegisterUser{Email: "kyc@example.com", Password: strongPassword, TrustEmail: true})
	if err != nil || r.Account.Level != 1 {
		t.Fatalf("trusted sign-up = %+v, %v; want level 1", r.Account, err)
	}
	admin := commands.Meta{ActorUID: "ID00000000AD", ActorRole: "admin"}
	r, err = e.app.Commands.AddLabel.Handle(ctx, commands.AddLabel{Meta: admin, UID: domain.UserID(r.Account.UID), By: domain.ActorAdmin, Key: "kyc", Value: "approved", Scope: "private"})
	if err != nil || r.Account.Level != 2 {
		t.Fatalf("kyc=approved = %+v, %v; want level 2 on this ladder", r.Account, err)
	}
}
