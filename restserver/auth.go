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
// was wrong, nor which user matched.
type authenticator struct {
	creds []credentialDigest
}

type credentialDigest struct {
	user, pass [sha256.Size]byte
	who        *principal
}

func newAuthenticator(users []User) *authenticator {
	a := &authenticator{}
	for _, u := range users {
		a.creds = append(a.creds, credentialDigest{
			user: sha256.Sum256([]byte(u.Name)),
			pass: sha256.Sum256([]byte(u.Password)),
			who:  &principal{name: u.Name, admin: u.Admin, produce: u.Produce, consume: u.Consume},
		})
	}
	return a
}

func (a *authenticator) enabled() bool { return len(a.creds) > 0 }

// valid returns the user of the pair, nil if none matches. Every pair is
// compared, and the match is selected without a branch.
func (a *authenticator) valid(user, pass string) *principal {
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	idx := -1
	for i, c := range a.creds {
		ok := subtle.ConstantTimeCompare(u[:], c.user[:]) & subtle.ConstantTimeCompare(p[:], c.pass[:])
		idx = subtle.ConstantTimeSelect(ok, i, idx)
	}
	if idx < 0 {
		return nil
	}
	return a.creds[idx].who
}

// presented is what a request offers to authenticate.
type presented struct {
	user, pass string
	form       credForm
}

type credForm int

const (
	credNone      credForm = iota // no credentials at all
	credBasic                     // an Authorization: Basic header
	credBadHeader                 // an Authorization header that is not valid Basic
	credQuery                     // the webhook's ?user=&pass=
)

// credentialsOf reads r's credentials. queryForm allows the webhook's
// ?user=&pass= form when no Authorization header is sent.
func credentialsOf(r *http.Request, queryForm bool) presented {
	if user, pass, ok := r.BasicAuth(); ok {
		return presented{user: user, pass: pass, form: credBasic}
	}
	if r.Header.Get("Authorization") != "" {
		return presented{form: credBadHeader}
	}
	if queryForm {
		if q := r.URL.Query(); q.Has("user") || q.Has("pass") {
			return presented{user: q.Get("user"), pass: q.Get("pass"), form: credQuery}
		}
	}
	return presented{}
}

// check authenticates the credentials c of r and returns their user (nil
// when authentication is off). queryForm says whether r could have used
// the webhook's ?user=&pass= form, for the error message.
func (a *authenticator) check(r *http.Request, c presented, queryForm bool) (*principal, error) {
	if !a.enabled() {
		return nil, nil
	}
	switch c.form {
	case credBasic, credQuery:
		if who := a.valid(c.user, c.pass); who != nil {
			return who, nil
		}
		return nil, &httpError{status: http.StatusUnauthorized, msg: "invalid credentials"}
	case credBadHeader:
		if h := r.Header.Get("Authorization"); len(h) >= 6 && strings.EqualFold(h[:6], "basic ") {
			return nil, &httpError{status: http.StatusUnauthorized,
				msg: "invalid credentials: the Basic credentials must be the base64 encoding of username:password"}
		}
		return nil, &httpError{status: http.StatusUnauthorized, msg: "invalid credentials: the Authorization header must use HTTP Basic authentication"}
	}
	if queryForm {
		return nil, &httpError{status: http.StatusUnauthorized, msg: "missing credentials: use HTTP Basic authentication or ?user=&pass="}
	}
	return nil, &httpError{status: http.StatusUnauthorized, msg: "missing credentials: use HTTP Basic authentication"}
}
