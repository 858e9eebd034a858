package restserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// TopicPattern names the topics a right covers: "orders" is that topic
// exactly, "orders.*" every topic whose name starts with "orders." (a
// single '*' at the end means a prefix), and "*" every topic. A pattern
// may not be empty nor hold '*' anywhere but at its end.
type TopicPattern string

// Match reports whether topic is covered by p.
func (p TopicPattern) Match(topic string) bool {
	if prefix, ok := strings.CutSuffix(string(p), "*"); ok {
		return strings.HasPrefix(topic, prefix)
	}
	return string(p) == topic
}

func (p TopicPattern) check() error {
	s := string(p)
	if s == "" {
		return errors.New("empty topic pattern")
	}
	if i := strings.IndexByte(s, '*'); i >= 0 && i != len(s)-1 {
		return fmt.Errorf("topic pattern %q: '*' may only end a pattern (a prefix)", s)
	}
	return nil
}

// User is one HTTP Basic credential and what it may do (see [WithUsers]).
type User struct {
	// Name and Password are the HTTP Basic pair. Neither may be empty,
	// and Name may not contain ':'. Names are unique on a server.
	Name, Password string
	// Produce lists the topics the user may write to: /produce and
	// /webhook.
	Produce []TopicPattern
	// Consume lists the topics the user may read: /consume, /commit,
	// /committed, /fetch and /offsets.
	Consume []TopicPattern
	// Admin grants every right: produce and consume on every topic,
	// /consumers, every topic in /topics, and /delete-consumer of any
	// instance.
	Admin bool
}

func (u *User) check() error {
	switch {
	case u.Name == "":
		return errors.New("empty name")
	case strings.Contains(u.Name, ":"):
		return fmt.Errorf("user %q: the name contains ':', which HTTP Basic auth cannot carry", u.Name)
	case u.Password == "":
		return fmt.Errorf("user %q: empty password", u.Name)
	case !u.Admin && len(u.Produce) == 0 && len(u.Consume) == 0:
		return fmt.Errorf("user %q has no right: give produce, consume or admin", u.Name)
	}
	for _, p := range append(append([]TopicPattern(nil), u.Produce...), u.Consume...) {
		if err := p.check(); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	return nil
}

// WithUsers adds users with their rights; use it with [WithCredentials]
// and several times as needed (a pair of WithCredentials is a user with
// Admin). The users are copied; New fails on an invalid one or a name
// given twice. Authentication works as with WithCredentials (constant
// time, never logged); then a request the user has no right to is
// answered 403 {"error": "...", "status": 403}, before any record is
// written or read. Each user without the admin right has its own namespace
// of consumer instance names (admins share one), so no user can reach,
// take or lock another's instance; an admin's delete-consumer reaches every
// user's instance of the name. Consuming does not create a topic for a user
// who may not produce to it.
// Consumer groups themselves are not owned. Without any user or
// credential, authentication is off and every request may do everything.
func WithUsers(users ...User) Option {
	cp := make([]User, len(users))
	for i, u := range users {
		u.Produce = append([]TopicPattern(nil), u.Produce...)
		u.Consume = append([]TopicPattern(nil), u.Consume...)
		cp[i] = u
	}
	return optionFunc(func(c *config) { c.users = append(c.users, cp...) })
}

// userLine is one line of a users file.
type userLine struct {
	Name     string         `json:"name"`
	Password string         `json:"password"`
	Produce  []TopicPattern `json:"produce"`
	Consume  []TopicPattern `json:"consume"`
	Admin    bool           `json:"admin"`
}

// maxUserLine bounds one line of a users file.
const maxUserLine = 64 << 10

// ReadUsers reads a users file: one JSON object per line,
//
//	{"name": "N", "password": "P", "produce": [PATTERN...], "consume": [PATTERN...], "admin": false}
//
// with name and password required and at least one of produce, consume
// or admin (see [User] and [TopicPattern]). Blank lines and lines whose
// first non-blank character is '#' are skipped. An unknown field (names
// are lower case), a field given twice, a line that is not exactly one
// object, an invalid user, a name given
// twice or a line over 64 KiB is an error naming the line (never the
// password).
func ReadUsers(r io.Reader) ([]User, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxUserLine)
	var users []User
	seen := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		u, err := parseUserLine(line)
		if err == nil {
			if first, dup := seen[u.Name]; dup {
				err = fmt.Errorf("user %q is already defined on line %d", u.Name, first)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("users file line %d: %w", n, err)
		}
		seen[u.Name] = n
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("users file line %d: longer than %d bytes", n+1, maxUserLine)
		}
		return nil, fmt.Errorf("users file: %w", err)
	}
	if len(users) == 0 {
		return nil, errors.New("users file: no user defined")
	}
	return users, nil
}

func parseUserLine(line []byte) (User, error) {
	if line[0] != '{' {
		return User{}, errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var l userLine
	if err := dec.Decode(&l); err != nil {
		return User{}, fmt.Errorf("not a valid user object: %s", jsonErrText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return User{}, errors.New("data after the JSON object")
	}
	if err := checkKeys(line); err != nil {
		return User{}, err
	}
	u := User(l)
	return u, u.check()
}

// userKeys are the fields of a users file line, spelled exactly.
var userKeys = map[string]bool{"name": true, "password": true, "produce": true, "consume": true, "admin": true}

// checkKeys refuses what encoding/json lets through: a field spelled in
// another case ("Name") and a field given twice. line is one valid JSON
// object.
func checkKeys(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil { // '{'
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		switch {
		case !userKeys[key]:
			return fmt.Errorf("not a valid user object: unknown field %q (fields are lower case)", key)
		case seen[key]:
			return fmt.Errorf("not a valid user object: field %q given twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

// jsonErrText is err's text without Go type names.
func jsonErrText(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("field %q has the wrong type (%s)", ute.Field, ute.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// principal is an authenticated user's rights; nil when authentication
// is off (everything allowed).
type principal struct {
	name             string
	admin            bool
	produce, consume []TopicPattern
}

type principalKey struct{}

func withPrincipal(r *http.Request, p *principal) *http.Request {
	if p == nil {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}

func principalOf(r *http.Request) *principal {
	p, _ := r.Context().Value(principalKey{}).(*principal)
	return p
}

// owner is the name consumer instances made by r belong to ("" when
// authentication is off).
func owner(r *http.Request) string {
	if p := principalOf(r); p != nil {
		return p.name
	}
	return ""
}

func anyMatch(ps []TopicPattern, topic string) bool {
	for _, p := range ps {
		if p.Match(topic) {
			return true
		}
	}
	return false
}

// mayProduce and mayConsume answer 403 unless r's user may write or read
// every topic named.
func mayProduce(r *http.Request, topics ...string) error {
	return mayTopics(r, "produce to", func(p *principal) []TopicPattern { return p.produce }, topics)
}

func mayConsume(r *http.Request, topics ...string) error {
	return mayTopics(r, "consume from", func(p *principal) []TopicPattern { return p.consume }, topics)
}

func mayTopics(r *http.Request, verb string, rights func(*principal) []TopicPattern, topics []string) error {
	p := principalOf(r)
	if p == nil || p.admin {
		return nil
	}
	for _, t := range topics {
		if !anyMatch(rights(p), t) {
			return forbidden(fmt.Sprintf("user %q may not %s topic %q", p.name, verb, t))
		}
	}
	return nil
}

// maySee reports whether r's user may see topic in /topics: it may
// produce to or consume from it.
func maySee(r *http.Request, topic string) bool {
	p := principalOf(r)
	return p == nil || p.admin || anyMatch(p.produce, topic) || anyMatch(p.consume, topic)
}

// mayAdmin answers 403 unless r's user is an admin.
func mayAdmin(r *http.Request, what string) error {
	if p := principalOf(r); p != nil && !p.admin {
		return forbidden(fmt.Sprintf("user %q may not %s: it needs the admin right", p.name, what))
	}
	return nil
}

// isAdmin reports whether r's user has the admin right (true without
// authentication).
func isAdmin(r *http.Request) bool {
	p := principalOf(r)
	return p == nil || p.admin
}

// checkOwner answers 403 if in belongs to another user than r's. Users
// without the admin right each have their own namespace of instance names
// (see keyFor), so this guards the namespace admins share: one admin does
// not use another's instance.
func checkOwner(r *http.Request, in *instance) error {
	p := principalOf(r)
	if p == nil || in.owner == p.name {
		return nil
	}
	return forbidden(fmt.Sprintf("consumer instance %q of group %q belongs to another user", in.key.name, in.key.group))
}

func forbidden(msg string) *httpError { return &httpError{status: http.StatusForbidden, msg: msg} }
