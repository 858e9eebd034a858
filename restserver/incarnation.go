package restserver

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kafkarpc/kafkarpc/transport"
)

// Incarnations of a consumer instance (an extension of this server).
//
// The REST API names a consumer instance by (group, instance) and keeps its
// read position on the server. A client process that crashes and comes back
// with the same instance name would, with the plain API, go on from the dead
// process's position: the records the server delivered to the dead process
// and that it never committed would be skipped. A client that wants the
// other behaviour (Kafka's static membership: the restarted member takes
// its partitions back at once and reads from the group's committed offsets)
// sends IncarnationHeader, an opaque token it makes once per process (or per
// subscription), on every consume, commit and delete of the instance:
//
//   - A token the server has not seen for the instance replaces the
//     instance: the old one is closed without committing its positions (they
//     belong to the dead process), its consume in flight ends with 404, and
//     the member made for the new token starts at the committed offsets.
//   - A token that was replaced is refused with 404 "replaced by a newer
//     incarnation", wrapping transport.ErrFenced: of two live processes with
//     the same instance name, the older stops instead of sharing the
//     instance (Kafka fences a static member the same way).
//   - Requests without the header are served as the plain API says, so
//     clients that do not know the extension (the Upstash SDKs) keep
//     working; other servers ignore the header.
//
// The server remembers the tokens of an instance while it exists and for the
// instance expiry after its last request, at most maxRetired replaced ones.
const IncarnationHeader = "Kafka-Instance-Incarnation"

const (
	// maxRetired bounds the replaced tokens kept per instance name.
	maxRetired = 16
	// maxIncarnationLen bounds a token's length.
	maxIncarnationLen = 128
)

// incarnation is what the server knows of an instance name's tokens.
type incarnation struct {
	current string
	retired []string // oldest first
	touched time.Time
}

// incarnationOf reads r's IncarnationHeader: "" when absent, 400 when
// malformed.
func incarnationOf(r *http.Request) (string, error) {
	v := strings.TrimSpace(r.Header.Get(IncarnationHeader))
	if len(v) > maxIncarnationLen {
		return "", badRequest(fmt.Sprintf("%s must be at most %d characters, got %d", IncarnationHeader, maxIncarnationLen, len(v)))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return "", badRequest(fmt.Sprintf("%s must be printable ASCII without spaces, got %q", IncarnationHeader, v))
		}
	}
	return v, nil
}

// claimIncarnation applies r's IncarnationHeader to the instance key (see
// IncarnationHeader): it refuses a replaced token with a fenced 404, and
// for a new token replaces the existing instance, closing it without a
// commit before it returns. create says whether r may create the instance
// (a consume): only then is a token remembered for a name with no instance
// yet, so requests that create nothing leave nothing behind.
func (s *Server) claimIncarnation(key instanceKey, r *http.Request, create bool) error {
	token, err := incarnationOf(r)
	if err != nil || token == "" {
		return err
	}
	s.mu.Lock()
	st := s.incarnations[key]
	in := s.instances[key]
	if in != nil {
		if err := checkOwner(r, in); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	if create && (st == nil || st.current != token) && !(st != nil && slices.Contains(st.retired, token)) {
		// A consume with a new token replaces the instance and makes its
		// own from r's headers: refuse bad ones first, so that a refused
		// request changes nothing (else a misconfigured new process would
		// fence the healthy one and never consume itself).
		if _, err := parseConsumerConfig(r.Header); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	switch {
	case st == nil && in == nil && !create:
		s.mu.Unlock()
		return nil
	case st == nil:
		st = &incarnation{current: token}
		s.incarnations[key] = st
	case st.current == token:
		in = nil // ours
	case slices.Contains(st.retired, token):
		s.mu.Unlock()
		return replacedErr(key)
	default:
		if st.current != "" {
			st.retired = append(st.retired, st.current)
			if len(st.retired) > maxRetired {
				st.retired = slices.Delete(st.retired, 0, len(st.retired)-maxRetired)
			}
		}
		st.current = token
	}
	st.touched = time.Now()
	if in != nil {
		delete(s.instances, key)
		in.replaced.Store(true)
	}
	s.mu.Unlock()
	if in != nil {
		s.closeInstance(in, "replaced by a new incarnation")
		// A consume of the old incarnation may be joining the group with
		// the same member id: wait for it to end (its join is abandoned
		// and whatever member it made is closed), else its join, done
		// after this incarnation's, would replace (fence) the new member.
		select {
		case in.pollSem <- struct{}{}:
			<-in.pollSem
		case <-r.Context().Done():
			return r.Context().Err()
		}
		s.log.Info("kafka-rest: consumer instance replaced by a new incarnation; it resumes from the committed offsets",
			"group", key.group, "instance", key.name)
	}
	return nil
}

// replacedErr is the answer to a request naming a replaced token.
func replacedErr(key instanceKey) error {
	return errorf(http.StatusNotFound,
		"consumer instance %q of group %q was replaced by a newer incarnation with the same instance id (%s); this one must stop: %w",
		key.name, key.group, IncarnationHeader, transport.ErrFenced)
}

// staleIncarnationLocked refuses r when its IncarnationHeader is no longer
// the current token of key. claimIncarnation checks the token and lets go
// of s.mu; a new incarnation may replace the instance before the request
// takes it, so whatever then uses the registry (acquireInstance, the
// delete) checks again under the same lock as the use: else the old
// incarnation's consume would create (or share) the new incarnation's
// instance and take records from it that the new one never sees, its
// commit would commit the new one's positions, its delete delete the new
// one's instance. Called with s.mu held.
func (s *Server) staleIncarnationLocked(key instanceKey, r *http.Request) error {
	token, err := incarnationOf(r)
	if err != nil || token == "" {
		return err
	}
	if st := s.incarnations[key]; st != nil && st.current != token {
		return replacedErr(key)
	}
	return nil
}

// fencedErr is the answer to a request that was using an instance when a
// new incarnation replaced it.
func fencedErr(key instanceKey) error {
	return errorf(http.StatusNotFound,
		"consumer instance %q of group %q was replaced by a newer incarnation with the same instance id (%s) during the request: %w",
		key.name, key.group, IncarnationHeader, transport.ErrFenced)
}

// forgetIncarnations drops what is known of the tokens of instance names
// that have no instance and no request since limit. Called with s.mu held.
func (s *Server) forgetIncarnationsLocked(limit time.Time) {
	for k, st := range s.incarnations {
		if s.instances[k] == nil && st.touched.Before(limit) {
			delete(s.incarnations, k)
		}
	}
}
