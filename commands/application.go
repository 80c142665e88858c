package commands

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// Application gathers every command handler, the session check the API authenticates with, and
// the level ladder the label commands use.
type Application struct {
	Commands Commands
	Sessions SessionCheck
	Levels   domain.Levels
	// APIKeyInfo finds an API key by its kid for the signature check (api_keys.go).
	APIKeyInfo APIKeyCheck
	// Policy are the administrators' access policy commands, over PolicyStream, which the
	// gateway's decisions also read (access_policy.go).
	Policy       AccessPolicyHandler
	PolicyStream *PolicyStream
}

// Commands are the handlers, one per command. Those of commands that present a secret are
// Handlers guarded by the attempt limiter (limits.go).
type Commands struct {
	RegisterUser             RegisterUserHandler
	RequestEmailVerification RequestEmailVerificationHandler
	VerifyEmail              Handler[VerifyEmail, Result]
	RequestPasswordReset     RequestPasswordResetHandler
	ResetPassword            Handler[ResetPassword, Result]
	SignIn                   SignInHandler
	SignOut                  SignOutHandler
	RefreshSession           RefreshSessionHandler
	RevokeSession            RevokeSessionHandler
	ChangePassword           Handler[ChangePassword, Result]
	ChangeEmail              Handler[ChangeEmail, Result]
	ChangeUsername           Handler[ChangeUsername, Result]
	UpdateUserData           UpdateUserDataHandler
	CreateProfile            CreateProfileHandler
	UpdateProfile            UpdateProfileHandler
	DeleteAccount            Handler[DeleteAccount, Result]
	GenerateOTPSecret        GenerateOTPSecretHandler
	EnableOTP                Handler[EnableOTP, Result]
	VerifyOTP                Handler[VerifyOTP, Result]
	DisableOTP               Handler[DisableOTP, Result]
	AddLabel                 AddLabelHandler
	UpdateLabel              UpdateLabelHandler
	RemoveLabel              RemoveLabelHandler
	CreditWallet             CreditWalletHandler
	SpendFromWallet          SpendFromWalletHandler
	WithdrawFromWallet       WithdrawFromWalletHandler
	// Administrators' commands; each checks the role table (policy.go).
	CreateUser      CreateUserHandler
	ChangeUserState ChangeUserStateHandler
	ChangeUserRole  ChangeUserRoleHandler
	ResetUserOTP    ResetUserOTPHandler
	SetUserLogin    SetUserLoginHandler
	CloseAccount    CloseAccountHandler
	RevokeSessions  RevokeSessionsHandler
	ReviewProfile   ReviewProfileHandler
	// KYC: phones, documents, data storage (phones.go, documents.go, data_storage.go).
	AddPhone      AddPhoneHandler
	SendPhoneCode SendPhoneCodeHandler
	VerifyPhone   Handler[VerifyPhone, Result]
	// UploadDocument answers the new document's id beside the Result.
	UploadDocument    UploadDocumentHandler
	ReviewDocument    ReviewDocumentHandler
	StoreData         StoreDataHandler
	DeleteDataStorage DeleteDataStorageHandler
	// ErasePersonalData: DELETE /admin/users/{uid}/personal-data and `idlog users erase`.
	ErasePersonalData ErasePersonalDataHandler
	// API keys (api_keys.go), each with a TOTP code.
	CreateAPIKey Handler[CreateAPIKey, APIKeyResult]
	ChangeAPIKey Handler[ChangeAPIKey, APIKeyResult]
	DeleteAPIKey Handler[DeleteAPIKey, APIKeyResult]
	// A whitelink's use, and the record of an audited request (access_policy.go).
	UseWhitelink Handler[UseWhitelink, PolicyResult]
	AuditRequest AuditRequestHandler
}

// Defaults of CodesConfig.
const (
	DefaultEmailTokenTTL = 24 * time.Hour
	DefaultResetTokenTTL = time.Hour
)

// CodesConfig sets how long one-shot tokens are valid. The zero value takes the defaults.
type CodesConfig struct {
	EmailTokenTTL time.Duration
	ResetTokenTTL time.Duration
	// PhoneCodeTTL is how long a phone's one-time code is valid (DefaultPhoneCodeTTL).
	PhoneCodeTTL time.Duration
	// Logger receives failed hand-offs to the Notifier. Nil discards.
	Logger *slog.Logger
}

func (c CodesConfig) withDefaults() CodesConfig {
	if c.EmailTokenTTL <= 0 {
		c.EmailTokenTTL = DefaultEmailTokenTTL
	}
	if c.ResetTokenTTL <= 0 {
		c.ResetTokenTTL = DefaultResetTokenTTL
	}
	if c.PhoneCodeTTL <= 0 {
		c.PhoneCodeTTL = DefaultPhoneCodeTTL
	}
	return c
}

func (c CodesConfig) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Deps are what the handlers need. All are required.
type Deps struct {
	Store    eventstore.Store
	Keys     eventstore.KeyOwners
	Registry *domain.Registry
	Hasher   *auth.PasswordHasher
	Sealer   *auth.Sealer
	Tokens   TokenSigner
	Notifier Notifier
	// Attempts limits attempts at secrets and code requests (package attempts).
	Attempts AttemptLimiter
	// UserLocks, when set, serialise the wallet commands of one user across replicas.
	UserLocks UserLocks
	// Outbox, when set, seals the messages commands cause (codes, security notices) into the
	// store's outbox, in the transaction of their events (UserStreams.UseOutbox); the Notifier
	// then receives nothing. The store must keep an outbox.
	Outbox Outbox
	// Eraser destroys users' data keys (personaldata.Store); nil: ErasePersonalData fails with
	// ErrErasureUnavailable (a store that does not seal personal data).
	Eraser PersonalDataEraser
}

// Config tunes the handlers. The zero value takes every default.
type Config struct {
	Streams  StreamsConfig
	Codes    CodesConfig
	SignIn   SignInConfig
	Wallet   WalletConfig
	Limits   LimitsConfig
	Sessions SessionsConfig
	// EraseOnDelete: a user deleting their own account also erases their personal data
	// (ErasePersonalData); it then needs Deps.Eraser.
	EraseOnDelete bool
}

// New builds every handler. A nil dependency panics (a wiring mistake); a bad setting is an error
// that names it.
func New(d Deps, c Config) (Application, error) {
	for name, missing := range map[string]bool{
		"Store": d.Store == nil, "Keys": d.Keys == nil, "Registry": d.Registry == nil, "Hasher": d.Hasher == nil,
		"Sealer": d.Sealer == nil, "Tokens": d.Tokens == nil, "Notifier": d.Notifier == nil, "Attempts": d.Attempts == nil,
	} {
		if missing {
			panic(fmt.Sprintf("commands: New needs Deps.%s", name))
		}
	}
	users, err := NewUserStreams(d.Store, d.Keys, d.Registry, c.Streams)
	if err != nil {
		return Application{}, err
	}
	if d.Outbox != nil {
		if err := users.UseOutbox(d.Outbox); err != nil {
			return Application{}, err
		}
	}
	limits, err := c.Limits.withDefaults()
	if err != nil {
		return Application{}, err
	}
	signIn, err := NewSignInHandler(users, d.Hasher, d.Sealer, d.Tokens, d.Attempts, limits, c.SignIn, c.Sessions)
	if err != nil {
		return Application{}, err
	}
	sessions, err := c.Sessions.withDefaults()
	if err != nil {
		return Application{}, err
	}
	g := &guardian{limiter: d.Attempts, limits: limits, users: users}
	codes := codeLimits{limiter: d.Attempts, limits: limits}
	if err := c.Wallet.validate(); err != nil {
		return Application{}, err
	}
	queue := NewUserQueue().Across(d.UserLocks)
	keys := NewAPIKeysHandler(users, d.Sealer)
	policyStream := NewPolicyStream(d.Store, d.Registry, c.Streams.Now)
	policy := NewAccessPolicyHandler(policyStream, d.Sealer)
	register := NewRegisterUserHandler(users, d.Hasher, d.Notifier, c.Codes, c.Wallet)
	erase := NewErasePersonalDataHandler(users, eraserOrNone(d.Eraser))
	var deleteAccount Handler[DeleteAccount, Result] = guard[DeleteAccount, Result](g, NewDeleteAccountHandler(users, d.Hasher, d.Sealer))
	if c.EraseOnDelete {
		deleteAccount = erasingDelete{delete: deleteAccount, erase: erase}
	}
	// Every command that presents a secret goes through the attempt limiter, here and only here.
	return Application{
		Commands: Commands{
			RegisterUser:             register,
			RequestEmailVerification: NewRequestEmailVerificationHandler(users, d.Notifier, c.Codes).limitedBy(codes),
			VerifyEmail:              guard[VerifyEmail, Result](g, NewVerifyEmailHandler(users)),
			RequestPasswordReset:     NewRequestPasswordResetHandler(users, d.Notifier, c.Codes).limitedBy(codes),
			ResetPassword:            guard[ResetPassword, Result](g, NewResetPasswordHandler(users, d.Hasher)),
			SignIn:                   signIn,
			SignOut:                  NewSignOutHandler(users),
			RefreshSession:           NewRefreshSessionHandler(users, d.Tokens, sessions),
			RevokeSession:            NewRevokeSessionHandler(users),
			ChangePassword:           guard[ChangePassword, Result](g, NewChangePasswordHandler(users, d.Hasher)),
			ChangeEmail:              guard[ChangeEmail, Result](g, NewChangeEmailHandler(users, d.Hasher, d.Notifier, c.Codes)),
			ChangeUsername:           guard[ChangeUsername, Result](g, NewChangeUsernameHandler(users, d.Hasher)),
			UpdateUserData:           NewUpdateUserDataHandler(users),
			CreateProfile:            NewCreateProfileHandler(users),
			UpdateProfile:            NewUpdateProfileHandler(users),
			DeleteAccount:            deleteAccount,
			GenerateOTPSecret:        NewGenerateOTPSecretHandler(users, d.Sealer),
			EnableOTP:                guard[EnableOTP, Result](g, NewEnableOTPHandler(users, d.Sealer)),
			VerifyOTP:                guard[VerifyOTP, Result](g, NewVerifyOTPHandler(users, d.Sealer)),
			DisableOTP:               guard[DisableOTP, Result](g, NewDisableOTPHandler(users, d.Sealer)),
			AddLabel:                 NewAddLabelHandler(users),
			UpdateLabel:              NewUpdateLabelHandler(users),
			RemoveLabel:              NewRemoveLabelHandler(users),
			CreditWallet:             NewCreditWalletHandler(users, queue),
			SpendFromWallet:          NewSpendFromWalletHandler(users, queue),
			WithdrawFromWallet:       NewWithdrawFromWalletHandler(users, queue),
			CreateUser:               NewCreateUserHandler(register),
			ChangeUserState:          NewChangeUserStateHandler(users),
			ChangeUserRole:           NewChangeUserRoleHandler(users),
			ResetUserOTP:             NewResetUserOTPHandler(users),
			SetUserLogin:             NewSetUserLoginHandler(users),
			CloseAccount:             NewCloseAccountHandler(users),
			RevokeSessions:           NewRevokeSessionsHandler(users),
			ReviewProfile:            NewReviewProfileHandler(users),
			AddPhone:                 NewAddPhoneHandler(users, d.Hasher, d.Notifier, c.Codes).limitedBy(codes),
			SendPhoneCode:            NewSendPhoneCodeHandler(users, d.Hasher, d.Notifier, c.Codes).limitedBy(codes),
			VerifyPhone:              guard[VerifyPhone, Result](g, NewVerifyPhoneHandler(users, d.Hasher)),
			UploadDocument:           NewUploadDocumentHandler(users),
			ReviewDocument:           NewReviewDocumentHandler(users),
			StoreData:                NewStoreDataHandler(users),
			DeleteDataStorage:        NewDeleteDataStorageHandler(users),
			ErasePersonalData:        erase,
			CreateAPIKey:             guard[CreateAPIKey, APIKeyResult](g, handlerFunc[CreateAPIKey, APIKeyResult](keys.Create)),
			ChangeAPIKey:             guard[ChangeAPIKey, APIKeyResult](g, handlerFunc[ChangeAPIKey, APIKeyResult](keys.Change)),
			DeleteAPIKey:             guard[DeleteAPIKey, APIKeyResult](g, handlerFunc[DeleteAPIKey, APIKeyResult](keys.Delete)),
			UseWhitelink:             guard[UseWhitelink, PolicyResult](g, handlerFunc[UseWhitelink, PolicyResult](policy.UseWhitelink)),
			AuditRequest:             NewAuditRequestHandler(users),
		},
		Sessions:     NewSessionCheck(users),
		Levels:       users.Levels(),
		APIKeyInfo:   NewAPIKeyCheck(users, d.Sealer),
		Policy:       policy,
		PolicyStream: policyStream,
	}, nil
}
