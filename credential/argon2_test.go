package credential

import (
	"errors"
	"strings"
	"testing"
)

// testParams keep unit tests fast; DefaultParams are exercised once.
var testParams = Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"correct horse battery staple", "", "ünïcödé-密码", strings.Repeat("x", MaxPasswordLen)} {
		h, err := Hash(pw, testParams)
		if err != nil {
			t.Fatalf("Hash(%d bytes): %v", len(pw), err)
		}
		if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
			t.Fatalf("hash %q is not a PHC argon2id string with the given params", h)
		}
		ok, err := Verify(pw, h)
		if err != nil || !ok {
			t.Fatalf("Verify(right password) = %v, %v", ok, err)
		}
		wrong := "!" + pw
		if len(wrong) > MaxPasswordLen {
			wrong = "!" + pw[1:]
		}
		ok, err = Verify(wrong, h)
		if err != nil || ok {
			t.Fatalf("Verify(wrong password) = %v, %v", ok, err)
		}
	}
}

func TestHashSaltsDiffer(t *testing.T) {
	t.Parallel()
	a, _ := Hash("same", testParams)
	b, _ := Hash("same", testParams)
	if a == b {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
}

func TestDefaultParamsHash(t *testing.T) {
	t.Parallel()
	h, err := Hash("s3cret-password", DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("default hash %q", h)
	}
	if NeedsRehash(h, DefaultParams) {
		t.Fatal("fresh default hash needs rehash")
	}
	if !NeedsRehash(h, Params{Memory: 65536, Time: 3, Threads: 1, SaltLen: 16, KeyLen: 32}) {
		t.Fatal("stronger params do not ask for a rehash")
	}
}

// Known-answer test: a hash produced by the reference implementation
// (phc-winner-argon2: echo -n password | argon2 somesalt -id -t 2 -m 16 -p 4 -l 32 -e).
func TestVerifyKnownAnswer(t *testing.T) {
	t.Parallel()
	const h = "$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo"
	ok, err := Verify("password", h)
	if err != nil || !ok {
		t.Fatalf("Verify(reference hash) = %v, %v", ok, err)
	}
	if ok, _ := Verify("Password", h); ok {
		t.Fatal("reference hash accepts the wrong password")
	}
}

func TestVerifyRejectsMalformed(t *testing.T) {
	t.Parallel()
	good, _ := Hash("pw", testParams)
	parts := strings.Split(good, "$")
	for name, h := range map[string]string{
		"empty":           "",
		"bcrypt":          "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":         strings.Replace(good, "argon2id", "argon2i", 1),
		"version 16":      strings.Replace(good, "v=19", "v=16", 1),
		"missing field":   "$argon2id$v=19$m=1024,t=1$" + parts[4] + "$" + parts[5],
		"bad base64 salt": "$argon2id$v=19$m=1024,t=1,p=1$!!!$" + parts[5],
		"short key":       "$argon2id$v=19$m=1024,t=1,p=1$" + parts[4] + "$AAAA",
		"huge memory":     "$argon2id$v=19$m=4294967295,t=1,p=1$" + parts[4] + "$" + parts[5],
		"huge time":       "$argon2id$v=19$m=1024,t=100000,p=1$" + parts[4] + "$" + parts[5],
		"zero threads":    "$argon2id$v=19$m=1024,t=1,p=0$" + parts[4] + "$" + parts[5],
		"negative":        "$argon2id$v=19$m=-1,t=1,p=1$" + parts[4] + "$" + parts[5],
		"trailing":        good + "$",
	} {
		ok, err := Verify("pw", h)
		if ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("%s: Verify = %v, %v; want false, ErrMalformedHash", name, ok, err)
		}
	}
}

func TestPasswordTooLong(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", MaxPasswordLen+1)
	if _, err := Hash(long, testParams); !errors.Is(err, ErrPasswordTooLong) {
		t.Fatalf("Hash(long) err = %v", err)
	}
	h, _ := Hash("a", testParams)
	if ok, err := Verify(long, h); ok || !errors.Is(err, ErrPasswordTooLong) {
		t.Fatalf("Verify(long) = %v, %v", ok, err)
	}
}

func TestParamsValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultParams.Validate(); err != nil {
		t.Fatalf("DefaultParams invalid: %v", err)
	}
	for _, p := range []Params{
		{Memory: 512, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 1024, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 1024, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 1024, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
		{Memory: 1 << 21, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
	} {
		if p.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", p)
		}
		if _, err := Hash("x", p); err == nil {
			t.Errorf("Hash with %+v succeeded", p)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h, err := Hash("correct horse battery staple", DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := Verify("correct horse battery staple", h); !ok {
			b.Fatal("no match")
		}
	}
}
