package main

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// eventually polls cond for up to 5 s (the UI saves asynchronously).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

// uiRole is a role as GET /api/roles answers it.
type uiRole struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	IsShared    bool     `json:"isShared"`
	LdapGroups  []string `json:"ldapGroups"`
	Permissions []struct {
		ID        string `json:"id"`
		Resource  string `json:"resource"`
		Operation string `json:"operation"`
		Context   string `json:"context"`
	} `json:"permissions"`
}

// roleByName reads the role named name over HTTP (nil when none is).
func (e *uiEnv) roleByName(name string) *uiRole {
	e.t.Helper()
	var roles []uiRole
	e.api("GET", "/api/roles?"+url.Values{"name[eq]": {name}}.Encode(), nil, &roles, 200)
	if len(roles) == 0 {
		return nil
	}
	return &roles[0]
}

// perms lists a role's permissions as "context operation resource".
func (r *uiRole) perms() []string {
	var out []string
	for _, p := range r.Permissions {
		out = append(out, p.Context+" "+p.Operation+" "+p.Resource)
	}
	slices.Sort(out)
	return out
}

// permRow is the XPath of the n-th permission row of the role form.
func permRow(n int) string {
	return fmt.Sprintf(`//main//fieldset[contains(@class,'perm-row')][%d]`, n)
}

// tryTopic fills the try-a-topic form inside scope (an XPath) and
// returns the answer's text; an error shown instead fails the test.
func (e *uiEnv) tryTopic(scope, topic string) string {
	e.t.Helper()
	answer := scope + `//div[contains(@class,'try-answer')]`
	e.b.Run("try "+topic, 10*time.Second,
		chromedp.SetValue(scope+`//input[@name='topic']`, topic, chromedp.BySearch),
		clickButton(scope, "Check"),
		chromedp.WaitVisible(answer+`/*`, chromedp.BySearch))
	var text string
	e.b.Run("answer", 5*time.Second, chromedp.Text(answer, &text, chromedp.BySearch))
	if e.b.Nodes(answer+`//*[@role='alert']`) > 0 {
		e.t.Fatalf("try %q: the page shows an error: %s", topic, text)
	}
	return text
}

// TestUIRoles walks the roles pages as an admin: a new role with an
// invalid pattern is refused in the form until it is fixed, the API then
// holds exactly the permissions typed; one permission is changed and one
// removed; a topic is tried against the role and for a user with a
// publish prefix; deleting a role that a user holds shows the API's
// refusal, and succeeds once nobody holds it. A caller who may only read
// roles is offered no control to change them.
func TestUIRoles(t *testing.T) {
	t.Parallel()
	e := startUI(t)
	// Realistic neighbours for the list's screenshot.
	e.api("POST", "/api/roles", map[string]any{"name": "dashboards", "isShared": true, "permissions": []map[string]string{
		{"resource": "plant1/+/status", "operation": "read", "context": "mqtt"},
		{"resource": "/api/clients", "operation": "read", "context": "http"}}}, nil, 201)
	var line2 uiRole
	e.api("POST", "/api/roles", map[string]any{"name": "line2-devices", "isShared": true, "permissions": []map[string]string{
		{"resource": "plant1/line2/{username}/#", "operation": "readWrite", "context": "mqtt"}}}, &line2, 201)
	e.api("POST", "/api/users", map[string]any{"username": "press-4", "password": validPassword(t), "roles": []string{line2.ID}}, nil, 201)

	e.signIn("admin", e.pw, "")
	e.page("roles", "Roles & permissions")
	e.b.Run("new role with an invalid pattern", 15*time.Second,
		clickButton("//main", "New role"),
		chromedp.WaitVisible(`//main//h1[normalize-space()="New role"]`, chromedp.BySearch),
		chromedp.SendKeys(`main input[name=name]`, "line1-devices"),
		clickButton("//main", "Add permission"), clickButton("//main", "Add permission"), clickButton("//main", "Add permission"),
		chromedp.SendKeys(permRow(1)+`//input[@name='resource']`, "plant1/line1/#", chromedp.BySearch),
		chromedp.SetValue(permRow(1)+`//select[@name='operation']`, "readWrite", chromedp.BySearch),
		chromedp.SendKeys(permRow(2)+`//input[@name='resource']`, "plant1/+/status", chromedp.BySearch),
		chromedp.SendKeys(permRow(3)+`//input[@name='resource']`, "plant1/line1/cmd#", chromedp.BySearch),
		chromedp.SetValue(permRow(3)+`//select[@name='operation']`, "write", chromedp.BySearch))
	if got := e.b.Text(permRow(3) + `//input[@name='resource']/following-sibling::p[contains(@class,'field-error')]`); got != "Invalid pattern: '#' must occupy a whole level." {
		t.Errorf("error next to the invalid pattern: %q", got)
	}
	var invalid string
	var ok bool
	e.b.Run("aria-invalid", 5*time.Second, chromedp.AttributeValue(permRow(3)+`//input[@name='resource']`, "aria-invalid", &invalid, &ok, chromedp.BySearch))
	if invalid != "true" {
		t.Errorf("the invalid pattern's input has aria-invalid=%q", invalid)
	}
	e.b.Run("save refused", 5*time.Second, clickButton("//main", "Create role"))
	if got := e.b.Text(`//main//form//p[@role='alert']`); !strings.Contains(got, "nothing was saved") {
		t.Errorf("alert after saving with an invalid row: %q", got)
	}
	if r := e.roleByName("line1-devices"); r != nil {
		t.Fatalf("a role with an invalid pattern was saved: %+v", r)
	}
	e.b.Run("fix and save", 10*time.Second,
		// SetValue fires the input event typing would.
		chromedp.SetValue(permRow(3)+`//input[@name='resource']`, "plant1/line1/cmd/+", chromedp.BySearch),
		clickButton("//main", "Create role"),
		chromedp.WaitVisible(`//main//h1[normalize-space()="Role line1-devices"]`, chromedp.BySearch))
	r := e.roleByName("line1-devices")
	if r == nil {
		t.Fatal("no role line1-devices after Create role")
	}
	want := []string{"mqtt read plant1/+/status", "mqtt readWrite plant1/line1/#", "mqtt write plant1/line1/cmd/+"}
	if !slices.Equal(r.perms(), want) || !r.IsShared {
		t.Fatalf("the API holds %v (shared %v), want %v", r.perms(), r.IsShared, want)
	}
	firstID := r.Permissions[0].ID

	// Change the first permission's operation, remove the second.
	e.b.Run("edit", 10*time.Second,
		chromedp.SetValue(permRow(1)+`//select[@name='operation']`, "read", chromedp.BySearch),
		chromedp.Click(`//main//button[@aria-label='Remove permission 2 (plant1/+/status)']`, chromedp.BySearch),
		clickButton("//main", "Save"))
	want = []string{"mqtt read plant1/line1/#", "mqtt write plant1/line1/cmd/+"}
	eventually(t, "the edit saved", func() bool { r = e.roleByName("line1-devices"); return slices.Equal(r.perms(), want) })
	if r.Permissions[0].ID != firstID {
		t.Errorf("the changed permission got a new ID: %s, was %s", r.Permissions[0].ID, firstID)
	}
	eventually(t, "the form shows two rows", func() bool { return e.b.Nodes(permRow(3)) == 0 && e.b.Nodes(permRow(2)) == 1 })

	// Try a topic against the role.
	text := e.tryTopic(`//main//form[contains(@class,'try')]`, "plant1/line1/temp")
	for _, s := range []string{"Read: ✓ Allowed", "plant1/line1/#", "Write: ✗ Denied", "Reason"} {
		if !strings.Contains(text, s) {
			t.Errorf("try plant1/line1/temp on the role: %q lacks %q", text, s)
		}
	}
	if n := e.b.Nodes(`main textarea[name=ldapGroups]`); n != 0 {
		t.Error("LDAP group links offered without a directory")
	}
	e.shoot("role")

	// A user holding the role, with a publish prefix, on #/access.
	e.api("POST", "/api/users", map[string]any{"username": "sensor-7", "password": validPassword(t), "roles": []string{r.ID},
		"mqttPublishPrefix": "plant1/line1/"}, nil, 201)
	e.page("access", "Try a topic")
	// The name box suggests usernames, or role names once A role is picked.
	e.b.Run("suggestions", 10*time.Second,
		chromedp.WaitReady(`//main//datalist/option[@value="sensor-7"]`, chromedp.BySearch),
		chromedp.Click(`//main//label[normalize-space()="A role"]`, chromedp.BySearch),
		chromedp.WaitReady(`//main//datalist/option[@value="line1-devices"]`, chromedp.BySearch),
		chromedp.Click(`//main//label[normalize-space()="A user"]`, chromedp.BySearch),
		chromedp.WaitReady(`//main//datalist/option[@value="sensor-7"]`, chromedp.BySearch))
	if n := e.b.Nodes(`//main//datalist/option[@value="line1-devices"]`); n != 0 {
		t.Error("role names suggested for a username")
	}
	e.b.Run("subject", 5*time.Second, chromedp.SendKeys(`main input[name=subject]`, "sensor-7"))
	text = e.tryTopic("//main", "cmd/start")
	for _, s := range []string{"Read: ✗ Denied", "Write: ✓ Allowed", "plant1/line1/cmd/+", "line1-devices", "plant1/line1/cmd/start"} {
		if !strings.Contains(text, s) {
			t.Errorf("try cmd/start for sensor-7: %q lacks %q", text, s)
		}
	}
	e.shoot("access")
	e.page("roles", "Roles & permissions")
	e.b.Run("list", 5*time.Second, chromedp.WaitVisible(`//main//td[normalize-space()="sensor-7"]`, chromedp.BySearch))
	e.shoot("roles")
	// Users' own roles show only when asked for.
	var all struct {
		Roles []struct {
			Name     string `json:"name"`
			IsShared bool   `json:"isshared"`
		} `json:"roles"`
	}
	e.api("GET", "/api/roles/page?pageNumber=1&rowsPerPage=50", nil, &all, 200)
	own := ""
	for _, ro := range all.Roles {
		if !ro.IsShared {
			own = ro.Name
		}
	}
	if own == "" {
		t.Fatal("the API lists no user's own role")
	}
	ownLink := fmt.Sprintf(`//main//a[normalize-space()=%q]`, own)
	if e.b.Nodes(ownLink) != 0 {
		t.Errorf("the user's own role %s is listed before Include users' own roles is checked", own)
	}
	e.b.Run("include own roles", 5*time.Second,
		chromedp.Click(`//main//label[normalize-space()="Include users' own roles"]`, chromedp.BySearch),
		chromedp.WaitVisible(ownLink, chromedp.BySearch))

	// Delete: refused while sensor-7 holds the role, done once nobody does.
	e.b.Run("open the role", 10*time.Second,
		chromedp.Navigate(e.base+"/#/roles/"+r.ID),
		chromedp.WaitVisible(`//main//h1[normalize-space()="Role line1-devices"]`, chromedp.BySearch),
		clickButton("//main", "Delete role"),
		clickButton("//dialog", "Delete role"),
		chromedp.WaitVisible(`//main//section[h2='Delete']//p[@role='alert']`, chromedp.BySearch))
	if msg := e.b.Text(`//main//section[h2='Delete']//p[@role='alert']`); !strings.Contains(msg, "conflict") {
		t.Errorf("deleting a held role shows %q", msg)
	}
	if e.roleByName("line1-devices") == nil {
		t.Fatal("the held role was deleted")
	}
	var users []struct{ ID, Username string }
	e.api("GET", "/api/users/usernames", nil, &users, 200)
	for _, u := range users {
		if u.Username == "sensor-7" {
			e.api("DELETE", "/api/users/"+u.ID, nil, nil, 200)
		}
	}
	e.b.Run("delete", 10*time.Second,
		clickButton("//main", "Delete role"),
		clickButton("//dialog", "Delete role"),
		chromedp.WaitVisible(`//main//h1[normalize-space()="Roles & permissions"]`, chromedp.BySearch),
		chromedp.WaitVisible(`//main//a[normalize-space()="line2-devices"]`, chromedp.BySearch))
	if e.roleByName("line1-devices") != nil {
		t.Error("the role is still in the API after Delete role")
	}

	// A caller with read on the roles only: no control to change them.
	pw := validPassword(t)
	e.api("POST", "/api/users", map[string]any{"username": "auditor", "password": pw,
		"initialPermissions": []map[string]string{{"resource": "/api/roles/#", "operation": "read", "context": "http"}}}, nil, 201)
	e.b.Run("log out", 10*time.Second, clickButton("//header", "Log out"), chromedp.WaitVisible(`input[name=username]`))
	e.signIn("auditor", pw, "")
	e.page("roles", "Roles & permissions")
	e.b.Run("read-only role", 10*time.Second,
		chromedp.WaitVisible(`//main//a[normalize-space()="dashboards"]`, chromedp.BySearch),
		chromedp.Navigate(e.base+"/#/roles/"+line2.ID),
		chromedp.WaitVisible(`//main//h1[normalize-space()="Role line2-devices"]`, chromedp.BySearch),
		chromedp.WaitVisible(`//main//td//code[.="plant1/line2/{username}/#"]`, chromedp.BySearch))
	if n := e.b.Nodes(`main button, main input, main select, main textarea`); n != 0 {
		t.Errorf("a caller who may only read roles is offered %d controls on a role's page", n)
	}
	e.page("roles", "Roles & permissions")
	if n := e.b.Nodes(`//main//button[normalize-space()="New role"]`); n != 0 {
		t.Error("a caller who may only read roles is offered New role")
	}
	if errs := e.b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// TestUIRoleLDAPGroups: with a directory configured, a role's page offers
// its LDAP group links, and what is typed there is what the API then
// holds; emptying the box removes the links. (Without a directory the
// box is not shown: TestUIRoles finds no textarea on the role's page.)
func TestUIRoleLDAPGroups(t *testing.T) {
	t.Parallel()
	// The directory is never asked: only the admin, a local user, signs in.
	e := startUI(t, "--ldap-url", "ldap://127.0.0.1:1", "--ldap-insecure", "--ldap-base-dn", "dc=example,dc=org",
		"--ldap-bind-dn-template", "uid={username},ou=people,dc=example,dc=org")
	const dn = "cn=line3-operators,ou=groups,dc=example,dc=org"
	e.signIn("admin", e.pw, "")
	e.page("roles/new", "New role")
	e.b.Run("create with a group", 10*time.Second,
		chromedp.SendKeys(`main input[name=name]`, "line3-operators"),
		clickButton("//main", "Add permission"),
		chromedp.SendKeys(permRow(1)+`//input[@name='resource']`, "plant1/line3/#", chromedp.BySearch),
		chromedp.SendKeys(`main textarea[name=ldapGroups]`, dn),
		clickButton("//main", "Create role"),
		chromedp.WaitVisible(`//main//h1[normalize-space()="Role line3-operators"]`, chromedp.BySearch))
	r := e.roleByName("line3-operators")
	if r == nil || !slices.Equal(r.LdapGroups, []string{dn}) {
		t.Fatalf("the API holds %+v, want the group %s linked", r, dn)
	}
	e.b.Run("unlink", 10*time.Second,
		chromedp.WaitVisible(`main textarea[name=ldapGroups]`),
		chromedp.SetValue(`main textarea[name=ldapGroups]`, "\n"),
		clickButton("//main", "Save"))
	eventually(t, "the link removed", func() bool { r = e.roleByName("line3-operators"); return len(r.LdapGroups) == 0 })
	if errs := e.b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}
