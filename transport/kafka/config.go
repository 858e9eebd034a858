package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms accepted by Config.SASLMechanism.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvBrokers       = "KAFKA_BROKERS"        // comma-separated host:port list (required)
	EnvClientID      = "KAFKA_CLIENT_ID"      // client.id sent to the brokers
	EnvSASLMechanism = "KAFKA_SASL_MECHANISM" // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	EnvSASLUsername  = "KAFKA_SASL_USERNAME"
	EnvSASLPassword  = "KAFKA_SASL_PASSWORD"
	EnvTLS           = "KAFKA_TLS"             // "true" to dial with TLS (implied by the other TLS variables)
	EnvTLSCAFile     = "KAFKA_TLS_CA_FILE"     // PEM roots; the system roots when empty
	EnvTLSCertFile   = "KAFKA_TLS_CERT_FILE"   // PEM client certificate (mutual TLS)
	EnvTLSKeyFile    = "KAFKA_TLS_KEY_FILE"    // PEM client key (mutual TLS)
	EnvTLSServerName = "KAFKA_TLS_SERVER_NAME" // overrides the name checked in the brokers' certificates
	EnvTLSInsecure   = "KAFKA_TLS_INSECURE_SKIP_VERIFY"
)

// Config holds how to reach a Kafka cluster: the seed brokers, SASL and
// TLS. It is shared by this package's Transport and by kafka-rest's Kafka
// backend. The zero value is not valid: Brokers is required.
//
// Config is a plain value; copying it is safe. String redacts the password,
// so a Config may be logged.
type Config struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string

	// ClientID is sent to the brokers as client.id. Default "kafkarpc".
	ClientID string

	// SASLMechanism is "" (no SASL), SASLPlain, SASLScramSHA256 or
	// SASLScramSHA512. SASLUsername and SASLPassword are its credentials.
	SASLMechanism string
	SASLUsername  string
	SASLPassword  string

	// TLS, when non-nil, makes every connection use TLS with this
	// configuration. nil dials in plaintext.
	TLS *tls.Config

	// DialTimeout bounds one connection attempt. Default 10 s.
	DialTimeout time.Duration
}

// ConfigFromEnv builds a Config from the environment variables Env*
// above. KAFKA_BROKERS is required; TLS is on when KAFKA_TLS is true or
// any KAFKA_TLS_* file or name is set. The result is validated.
func ConfigFromEnv() (Config, error) {
	return configFromLookup(os.LookupEnv)
}

func configFromLookup(lookup func(string) (string, bool)) (Config, error) {
	get := func(k string) string { v, _ := lookup(k); return strings.TrimSpace(v) }
	var c Config
	brokers := get(EnvBrokers)
	if brokers == "" {
		return Config{}, fmt.Errorf("kafka: %s is not set", EnvBrokers)
	}
	c.Brokers = SplitBrokers(brokers)
	c.ClientID = get(EnvClientID)
	c.SASLMechanism = get(EnvSASLMechanism)
	c.SASLUsername = get(EnvSASLUsername)
	c.SASLPassword, _ = lookup(EnvSASLPassword) // a password may carry spaces

	tlsOn := false
	if v := get(EnvTLS); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("kafka: %s=%q: want true or false", EnvTLS, v)
		}
		tlsOn = on
	}
	insecure := false
	if v := get(EnvTLSInsecure); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("kafka: %s=%q: want true or false", EnvTLSInsecure, v)
		}
		insecure = on
	}
	files := TLSFiles{CAFile: get(EnvTLSCAFile), CertFile: get(EnvTLSCertFile), KeyFile: get(EnvTLSKeyFile), ServerName: get(EnvTLSServerName), InsecureSkipVerify: insecure}
	if tlsOn || files != (TLSFiles{}) {
		cfg, err := files.Load()
		if err != nil {
			return Config{}, err
		}
		c.TLS = cfg
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// SplitBrokers splits a comma-separated broker list, dropping blanks.
func SplitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// TLSFiles names the PEM files of a TLS configuration, as flags and
// environment variables give them.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
	ServerName                string
	InsecureSkipVerify        bool
}

// Load reads the files into a *tls.Config (TLS 1.2 at least). An empty
// CAFile means the system roots. CertFile and KeyFile go together.
func (f TLSFiles) Load() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.InsecureSkipVerify} //nolint:gosec // opt-in by the operator
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka: TLS CA file %s holds no PEM certificate", f.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("kafka: TLS client certificate and key must be given together")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Validate reports the first problem with c, or nil.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: no brokers: give at least one host:port")
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("kafka: broker %q: want host:port", b)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("kafka: broker %q: bad port", b)
		}
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
		if c.SASLUsername != "" || c.SASLPassword != "" {
			return errors.New("kafka: SASL credentials given without a SASL mechanism")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASLUsername == "" {
			return fmt.Errorf("kafka: SASL %s needs a username", c.SASLMechanism)
		}
	default:
		return fmt.Errorf("kafka: SASL mechanism %q: want %s, %s or %s", c.SASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("kafka: negative dial timeout %v", c.DialTimeout)
	}
	return nil
}

// String describes c for logs, with the password redacted.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "brokers=%s", strings.Join(c.Brokers, ","))
	if c.SASLMechanism != "" {
		fmt.Fprintf(&b, " sasl=%s user=%s password=<redacted>", strings.ToUpper(c.SASLMechanism), c.SASLUsername)
	}
	if c.TLS != nil {
		b.WriteString(" tls=on")
	}
	return b.String()
}

// ClientOpts returns the franz-go options that connect as c says: seed
// brokers, client id, dial timeout, TLS and SASL. Callers add their own
// producer and consumer options after these.
func (c Config) ClientOpts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	id := c.ClientID
	if id == "" {
		id = "kafkarpc"
	}
	dt := c.DialTimeout
	if dt == 0 {
		dt = 10 * time.Second
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(id), kgo.DialTimeout(dt)}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS.Clone()))
	}
	if m := c.saslMechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (c Config) saslMechanism() sasl.Mechanism {
	switch strings.ToUpper(c.SASLMechanism) {
	case SASLPlain:
		return plain.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha512Mechanism()
	}
	return nil
}
