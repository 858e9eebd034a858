package restserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authenticator checks HTTP Basic credentials. It keeps only SHA-256 digests
// of the configured pairs and compares digests of equal length in constant
// time, against every pair, so neither timing nor length tells which part
// was wrong.
type authenticator struct {
	creds []credentialDigest
}

type credentialDigest struct{ user, pass [sha256.Size]byte }

func newAuthenticator(creds []credential) *authenticator {
	a := &authenticator{}
	for _, c := range creds {
		a.creds = append(a.creds, credentialDigest{
			user: sha256.Sum256([]byte(c.username)),
			pass: sha256.Sum256([]byte(c.password)),
		})
	}
	return a
}

func (a *authenticator) enabled() bool { return len(a.creds) > 0 }

func (a *authenticator) valid(user, pass string) bool {
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	ok := 0
	for _, c := range a.creds {
		ok |= subtle.ConstantTimeCompare(u[:], c.user[:]) & subtle.ConstantTimeCompare(p[:], c.pass[:])
	}
	return ok == 1
}

// check authenticates r. queryForm allows the webhook's ?user=&pass= form
// when no Authorization header is sent.
func (a *authenticator) check(r *http.Request, queryForm bool) error {
	if !a.enabled() {
		return nil
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if a.valid(user, pass) {
			return nil
		}
		return &httpError{status: http.StatusUnauthorized, msg: "invalid credentials"}
	}
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) >= 6 && strings.EqualFold(h[:6], "basic ") {
			return &httpError{status: http.StatusUnauthorized,
				msg: "invalid credentials: the Basic credentials must be the base64 encoding of username:password"}
		}
		return &httpError{status: http.StatusUnauthorized, msg: "invalid credentials: the Authorization header must use HTTP Basic authentication"}
	}
	if queryForm {
		q := r.URL.Query()
		if q.Has("user") || q.Has("pass") {
			if a.valid(q.Get("user"), q.Get("pass")) {
				return nil
			}
			return &httpError{status: http.StatusUnauthorized, msg: "invalid credentials"}
		}
		return &httpError{status: http.StatusUnauthorized, msg: "missing credentials: use HTTP Basic authentication or ?user=&pass="}
	}
	return &httpError{status: http.StatusUnauthorized, msg: "missing credentials: use HTTP Basic authentication"}
}
