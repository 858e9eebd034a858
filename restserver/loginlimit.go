package restserver

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// loginLimiter bounds failed logins per client address with a token
// bucket: each address may fail burst times at once, and gains one more
// try every interval/burst. An address out of tries is answered 429 with
// Retry-After, without its credentials being checked (so guessing gains
// nothing), until it has a try again.
type loginLimiter struct {
	burst float64
	every time.Duration // time to regain one try
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*loginBucket
}

type loginBucket struct {
	tries float64
	at    time.Time
}

// maxLoginBuckets bounds the addresses tracked; past it, full buckets are
// dropped, and if none is full the table starts over.
const maxLoginBuckets = 10_000

func newLoginLimiter(perMinute int) *loginLimiter {
	return &loginLimiter{
		burst:   float64(perMinute),
		every:   time.Minute / time.Duration(perMinute),
		now:     time.Now,
		buckets: make(map[string]*loginBucket),
	}
}

// clientKey is r's client address without the port ("" when unknown).
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// refill brings b up to now. Called with mu held.
func (l *loginLimiter) refill(b *loginBucket, now time.Time) {
	b.tries = math.Min(l.burst, b.tries+float64(now.Sub(b.at))/float64(l.every))
	b.at = now
}

// blocked returns the wait before key may try again, or 0 if it may.
func (l *loginLimiter) blocked(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return 0
	}
	l.refill(b, l.now())
	if b.tries >= 1 {
		return 0
	}
	return time.Duration((1 - b.tries) * float64(l.every))
}

// failed spends one try of key.
func (l *loginLimiter) failed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxLoginBuckets {
			l.pruneLocked(now)
		}
		b = &loginBucket{tries: l.burst, at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	b.tries = math.Max(0, b.tries-1)
}

// pruneLocked drops the buckets that are full again; if none is, it starts
// the table over. Called with mu held.
func (l *loginLimiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		if l.refill(b, now); b.tries >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxLoginBuckets {
		clear(l.buckets)
	}
}

// tooManyLogins is the 429 of an address out of tries.
func tooManyLogins(wait time.Duration) *httpError {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	return &httpError{status: http.StatusTooManyRequests, retryAfter: strconv.Itoa(secs),
		msg: "too many failed logins from this address; retry after " + strconv.Itoa(secs) + " s"}
}
