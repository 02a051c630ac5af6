package natscallout

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/nats-io/nkeys"

	"github.com/warden-mqtt/warden/store"
)

// SettingIssuer is the store setting holding the seed of the auth callout
// issuer: the account nkey whose public key every NATS node names in its
// auth_callout block and whose private half signs the answers. It is key
// material: store.KeySettings lists "nats/", so backups carry it only with
// keys.
const SettingIssuer = "nats/issuer"

// ErrIssuerInvalid means the stored issuer setting is not an account nkey
// seed. It is never replaced by a fresh key: every NATS node trusts the
// stored one, so a new key would make every callout answer invalid.
var ErrIssuerInvalid = errors.New("natscallout: stored issuer is not an account nkey seed")

// LoadIssuer returns the callout issuer key pair kept in st, creating it
// if st has none. Nodes racing to create it agree on the first one stored
// (CreateSetting), as with the token signing keys, so every warden node
// signs with the key the NATS servers trust. A store error is returned,
// never papered over with a fresh key.
func LoadIssuer(ctx context.Context, st store.Store) (nkeys.KeyPair, error) {
	seed, err := st.Setting(ctx, SettingIssuer)
	if errors.Is(err, store.ErrNotFound) {
		seed, err = createIssuer(ctx, st)
	}
	if err != nil {
		return nil, fmt.Errorf("natscallout: load issuer: %w", err)
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, ErrIssuerInvalid // the nkeys error could quote the seed
	}
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return nil, ErrIssuerInvalid
	}
	return kp, nil
}

// createIssuer stores a fresh account nkey seed unless another node got
// there first, and returns the stored one either way.
func createIssuer(ctx context.Context, st store.Store) ([]byte, error) {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		return nil, err
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	err = st.CreateSetting(ctx, SettingIssuer, seed)
	if errors.Is(err, store.ErrConflict) {
		return st.Setting(ctx, SettingIssuer)
	}
	if err != nil {
		return nil, err
	}
	return seed, nil
}

// issuerKey is an account key pair that derives its ed25519 key once.
// nkeys' own key pair derives it from the seed at every Sign and
// PublicKey call, several times per callout answer (the response and the
// user JWT are each signed, and each encoding asks for the public key):
// about a third of warden's CPU per NATS connect before this.
type issuerKey struct {
	nkeys.KeyPair // Seed, PrivateKey, Wipe; Seal and Open refuse, as for any account key
	pub           string
	priv          ed25519.PrivateKey
}

// newIssuerKey wraps kp, an account key pair.
func newIssuerKey(kp nkeys.KeyPair) (*issuerKey, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	_, raw, err := nkeys.DecodeSeed(seed)
	if err != nil {
		return nil, err
	}
	return &issuerKey{KeyPair: kp, pub: pub, priv: ed25519.NewKeyFromSeed(raw)}, nil
}

// PublicKey returns the encoded public key.
func (k *issuerKey) PublicKey() (string, error) { return k.pub, nil }

// Sign signs input with the derived private key.
func (k *issuerKey) Sign(input []byte) ([]byte, error) { return ed25519.Sign(k.priv, input), nil }

// Verify checks a signature of input.
func (k *issuerKey) Verify(input, sig []byte) error {
	if !ed25519.Verify(k.priv.Public().(ed25519.PublicKey), input, sig) {
		return nkeys.ErrInvalidSignature
	}
	return nil
}
