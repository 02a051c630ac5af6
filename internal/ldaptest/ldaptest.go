package ldaptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Directory is a running slapd with the seeded tree.
type Directory struct {
	// URL is the ldap:// URL (StartTLS is offered on it).
	URL string
	// LDAPSURL is the ldaps:// URL (TLS from the first byte).
	LDAPSURL string
	// BaseDN is the directory's suffix (the BaseDN constant).
	BaseDN string
	// BindDN and BindPassword are the read-only service account.
	BindDN, BindPassword string
	// RootDN and RootPassword are the rootdn, which may write.
	RootDN, RootPassword string
	// CAFile is a PEM file holding the CA that issued the server
	// certificate (valid for 127.0.0.1 and localhost).
	CAFile string
	// CAPool holds that CA.
	CAPool *x509.CertPool

	cmd    *exec.Cmd
	out    bytes.Buffer  // slapd's output; read only after exited
	exited chan struct{} // closed once slapd has been waited for
	once   sync.Once
}

// Option changes what Start seeds.
type Option func(*options)

type options struct {
	extraLDIF []string
}

// WithLDIF adds entries (LDIF for ldapadd) after the seeded tree.
func WithLDIF(ldif string) Option {
	return func(o *options) { o.extraLDIF = append(o.extraLDIF, ldif) }
}

// Start runs slapd with a configuration of its own in t.TempDir(), on free
// loopback ports, seeds the tree (fixture.go) and returns once the
// directory answers. slapd is killed when the test ends. A missing slapd or
// ldapadd fails the test, naming the package to install.
func Start(t testing.TB, opts ...Option) *Directory {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	slapd := lookPath(t, "slapd", "/usr/sbin/slapd", "slapd")
	lookPath(t, "ldapadd", "", "ldap-utils")
	dir := t.TempDir()
	ca, err := writePKI(dir)
	if err != nil {
		t.Fatalf("ldaptest: make certificates: %v", err)
	}
	// A free port may be taken between the probe and slapd's bind; slapd
	// then exits and we try other ports.
	var errs []error
	for range 3 {
		d, err := start(slapd, dir, ca)
		if err == nil {
			t.Cleanup(d.Stop)
			ldif := append([]string{seedLDIF()}, o.extraLDIF...)
			if err := d.ldap("ldapadd", strings.Join(ldif, "\n")); err != nil {
				t.Fatalf("ldaptest: seed: %v", err)
			}
			return d
		}
		errs = append(errs, err)
	}
	t.Fatalf("ldaptest: start slapd: %v", errors.Join(errs...))
	return nil
}

// lookPath finds a program, also in sbin directories that a non-root PATH
// often lacks.
func lookPath(t testing.TB, name, fallback, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if fallback != "" {
		if _, err := os.Stat(fallback); err == nil {
			return fallback
		}
	}
	t.Fatalf("ldaptest: %s not found; install it with `apt-get install slapd ldap-utils` (package %s) or run `make deps`", name, pkg)
	return ""
}

type caFiles struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
}

func start(slapd, dir string, ca caFiles) (*Directory, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	run, err := os.MkdirTemp(dir, "slapd-")
	if err != nil {
		return nil, err
	}
	db := filepath.Join(run, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(run, "slapd.conf")
	if err := os.WriteFile(conf, []byte(slapdConf(run, db, ca)), 0o600); err != nil {
		return nil, err
	}
	d := &Directory{
		URL:          "ldap://127.0.0.1:" + strconv.Itoa(ports[0]),
		LDAPSURL:     "ldaps://127.0.0.1:" + strconv.Itoa(ports[1]),
		BaseDN:       BaseDN,
		BindDN:       ReaderDN,
		BindPassword: ReaderPassword,
		RootDN:       RootDN,
		RootPassword: RootPassword,
		CAFile:       ca.caFile,
		CAPool:       ca.pool,
		exited:       make(chan struct{}),
	}
	// -d 0 keeps slapd in the foreground (so this process owns it and can
	// kill it) without debug output.
	d.cmd = exec.Command(slapd, "-f", conf, "-h", d.URL+"/ "+d.LDAPSURL+"/", "-d", "0")
	d.cmd.Stdout = &d.out
	d.cmd.Stderr = &d.out
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.exited)
	}()
	addr := strings.TrimPrefix(d.URL, "ldap://")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return d, nil
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("slapd on ports %v exited: %s", ports, strings.TrimSpace(d.out.String()))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("slapd on ports %v did not accept a connection within 5s: %v; output: %s", ports, err, strings.TrimSpace(d.out.String()))
		}
	}
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Stop kills slapd (SIGKILL: the directory is simply gone) and waits for it
// to exit. Connections to URL and LDAPSURL fail afterwards. It is safe to
// call more than once.
func (d *Directory) Stop() {
	d.once.Do(func() {
		_ = d.cmd.Process.Kill()
		<-d.exited
	})
}

// Freeze suspends slapd (SIGSTOP) without closing its sockets: the kernel
// still accepts connections, and nothing answers, as with a hung directory.
// It resumes when the test ends.
func (d *Directory) Freeze(t testing.TB) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("ldaptest: freeze slapd: %v", err)
	}
	t.Cleanup(func() { _ = d.cmd.Process.Signal(syscall.SIGCONT) })
}

// Modify applies LDIF changes (ldapmodify syntax: changetype add, modify,
// delete, ...) as the rootdn, for tests that change group membership or
// delete a user. It fails the test when ldapmodify fails.
func (d *Directory) Modify(t testing.TB, ldif string) {
	t.Helper()
	if err := d.ldap("ldapmodify", ldif); err != nil {
		t.Fatalf("ldaptest: modify: %v", err)
	}
}

// ldap runs ldapadd or ldapmodify as the rootdn over plain ldap:// on
// loopback, with the LDIF on standard input.
func (d *Directory) ldap(prog, ldif string) error {
	cmd := exec.Command(prog, "-x", "-H", d.URL, "-D", d.RootDN, "-w", d.RootPassword)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", prog, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// TLSConfig returns a client configuration that trusts the directory's CA.
func (d *Directory) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: d.CAPool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// slapdConf is the directory's configuration: the mdb database, the
// memberof overlay (users carry memberOf of their direct groups), refint
// (deleting a user removes it from groups), and ppolicy (a locked account's
// bind fails; clear-text passwords are hashed on add).
func slapdConf(run, db string, ca caFiles) string {
	return `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile ` + filepath.Join(run, "slapd.pid") + `
argsfile ` + filepath.Join(run, "slapd.args") + `
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload refint
moduleload ppolicy
TLSCACertificateFile ` + ca.caFile + `
TLSCertificateFile ` + ca.certFile + `
TLSCertificateKeyFile ` + ca.keyFile + `
password-hash {SSHA}

database mdb
maxsize 16777216
suffix "` + BaseDN + `"
rootdn "` + RootDN + `"
rootpw ` + RootPassword + `
directory ` + db + `
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by users read by * none

overlay memberof
memberof-refint TRUE
overlay refint
refint_attributes member
overlay ppolicy
ppolicy_default "cn=default,ou=policies,` + BaseDN + `"
ppolicy_hash_cleartext
ppolicy_use_lockout
`
}

// seedLDIF is the seeded tree: the service account, people, groups and the
// password policy that makes pwdAccountLockedTime lock an account.
func seedLDIF() string {
	var b strings.Builder
	fmt.Fprintf(&b, `dn: %s
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=policies,%[1]s
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,%[1]s
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE

dn: %s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: %s

dn: %s
objectClass: organizationalUnit
ou: people

dn: %s
objectClass: organizationalUnit
ou: groups
`, BaseDN, ReaderDN, ReaderPassword, PeopleDN, GroupsDN)
	for _, u := range Users {
		fmt.Fprintf(&b, "\ndn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s\nuserPassword: %s\n",
			u.DN, u.Username, u.Username, u.Username, u.Mail, u.Password)
		for _, r := range u.Roles {
			fmt.Fprintf(&b, "%s: %s\n", RoleAttribute, r)
		}
		if u.Disabled {
			b.WriteString("pwdAccountLockedTime: 000001010000Z\n")
		}
	}
	group := func(dn, cn string, members ...string) {
		fmt.Fprintf(&b, "\ndn: %s\nobjectClass: groupOfNames\ncn: %s\n", dn, cn)
		for _, m := range members {
			fmt.Fprintf(&b, "member: %s\n", m)
		}
	}
	group(Operators, "operators", Alice.DN, Dave.DN)
	group(Admins, "admins", Bob.DN)
	group(Staff, "staff", Operators)
	return b.String()
}

// writePKI makes a CA and a server certificate for 127.0.0.1 and localhost
// and writes them as PEM files into dir.
func writePKI(dir string) (caFiles, error) {
	f := caFiles{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server-key.pem"),
	}
	caKey, caCert, caDER, err := newCA("ldaptest CA")
	if err != nil {
		return f, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return f, err
	}
	if err := writePEM(f.caFile, "CERTIFICATE", caDER); err != nil {
		return f, err
	}
	if err := writePEM(f.certFile, "CERTIFICATE", der); err != nil {
		return f, err
	}
	if err := writePEM(f.keyFile, "PRIVATE KEY", keyDER); err != nil {
		return f, err
	}
	f.pool = x509.NewCertPool()
	f.pool.AddCert(caCert)
	return f, nil
}

func newCA(cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return key, cert, der, nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// OtherCAFile writes a CA certificate that did not issue the directory's
// server certificate, for tests that a client refuses an untrusted server.
func OtherCAFile(t testing.TB) string {
	t.Helper()
	_, _, der, err := newCA("ldaptest unrelated CA")
	if err != nil {
		t.Fatalf("ldaptest: make CA: %v", err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := writePEM(path, "CERTIFICATE", der); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	return path
}
