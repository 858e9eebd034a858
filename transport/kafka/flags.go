package kafka

import (
	"flag"
	"os"
	"strconv"
	"strings"
)

// Flags are command-line flags for a [Config], for programs such as
// kafka-rest. A flag left unset falls back to its KAFKA_* environment
// variable (see [ConfigFromEnv]), so secrets can stay out of the process
// list: prefer KAFKA_SASL_PASSWORD to --kafka-sasl-password. Register them
// with [Flags.Register]; build the Config with [Flags.Config].
type Flags struct {
	Brokers       string
	ClientID      string
	SASLMechanism string
	SASLUsername  string
	SASLPassword  string
	TLS           bool
	TLSFiles      TLSFiles

	set map[string]bool // flags given on the command line
	fs  *flag.FlagSet
}

// Register adds the flags to fs: --brokers and --kafka-* for the client
// id, SASL and TLS.
func (f *Flags) Register(fs *flag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.Brokers, "brokers", "", "Kafka `host:port,...` to proxy (default $"+EnvBrokers+" when another --kafka-* flag asks for Kafka); without it, an embedded broker")
	fs.StringVar(&f.ClientID, "kafka-client-id", "", "client.id sent to the brokers (default $"+EnvClientID+", else kafkarpc)")
	fs.StringVar(&f.SASLMechanism, "kafka-sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default $"+EnvSASLMechanism+"; none: no SASL)")
	fs.StringVar(&f.SASLUsername, "kafka-sasl-username", "", "SASL username (default $"+EnvSASLUsername+")")
	fs.StringVar(&f.SASLPassword, "kafka-sasl-password", "", "SASL password (default $"+EnvSASLPassword+", preferable: flags show in the process list)")
	fs.BoolVar(&f.TLS, "kafka-tls", false, "dial the brokers with TLS (default $"+EnvTLS+"; implied by the other --kafka-tls-* flags)")
	fs.StringVar(&f.TLSFiles.CAFile, "kafka-tls-ca-file", "", "PEM roots to check the brokers with (default $"+EnvTLSCAFile+", else the system roots)")
	fs.StringVar(&f.TLSFiles.CertFile, "kafka-tls-cert-file", "", "PEM client certificate, mutual TLS (default $"+EnvTLSCertFile+")")
	fs.StringVar(&f.TLSFiles.KeyFile, "kafka-tls-key-file", "", "PEM client key, mutual TLS (default $"+EnvTLSKeyFile+")")
	fs.StringVar(&f.TLSFiles.ServerName, "kafka-tls-server-name", "", "name checked in the brokers' certificates (default $"+EnvTLSServerName+")")
	fs.BoolVar(&f.TLSFiles.InsecureSkipVerify, "kafka-tls-insecure-skip-verify", false, "do not check the brokers' certificates (default $"+EnvTLSInsecure+")")
}

// Wanted reports whether the command line asks for Kafka: --brokers or any
// other flag of Register was given. Call it after fs.Parse.
func (f *Flags) Wanted() bool {
	f.visit()
	return len(f.set) > 0
}

func (f *Flags) visit() {
	if f.set != nil || f.fs == nil {
		return
	}
	f.set = map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "brokers" || strings.HasPrefix(fl.Name, "kafka-") && fl.Name != "kafka-connect-timeout" {
			f.set[fl.Name] = true
		}
	})
}

// Config builds the Config: each flag given wins over its environment
// variable, and the result is validated as ConfigFromEnv validates. Call it
// after fs.Parse.
func (f *Flags) Config() (Config, error) {
	return f.config(os.LookupEnv)
}

func (f *Flags) config(env func(string) (string, bool)) (Config, error) {
	f.visit()
	flagOf := map[string]struct {
		name string
		val  string
	}{
		EnvBrokers:       {"brokers", f.Brokers},
		EnvClientID:      {"kafka-client-id", f.ClientID},
		EnvSASLMechanism: {"kafka-sasl-mechanism", f.SASLMechanism},
		EnvSASLUsername:  {"kafka-sasl-username", f.SASLUsername},
		EnvSASLPassword:  {"kafka-sasl-password", f.SASLPassword},
		EnvTLS:           {"kafka-tls", strconv.FormatBool(f.TLS)},
		EnvTLSCAFile:     {"kafka-tls-ca-file", f.TLSFiles.CAFile},
		EnvTLSCertFile:   {"kafka-tls-cert-file", f.TLSFiles.CertFile},
		EnvTLSKeyFile:    {"kafka-tls-key-file", f.TLSFiles.KeyFile},
		EnvTLSServerName: {"kafka-tls-server-name", f.TLSFiles.ServerName},
		EnvTLSInsecure:   {"kafka-tls-insecure-skip-verify", strconv.FormatBool(f.TLSFiles.InsecureSkipVerify)},
	}
	return configFromLookup(func(k string) (string, bool) {
		if fl, ok := flagOf[k]; ok && f.set[fl.name] {
			return fl.val, true
		}
		return env(k)
	})
}
