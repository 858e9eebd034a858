// Package restwire is the JSON wire of the Upstash-style Kafka REST API
// (UPSTASH_REST.md §3–§6), shared by both ends of it: the REST server
// (restserver) and the REST client (transport/upstash). It holds the wire
// shapes as Go types, the hand-written encoders of the hot bodies and the
// hand-written decoders of the hot bodies, so that the two ends speak one
// definition of the protocol, as franz-go's client and fake broker share
// kmsg.
//
// The fast paths exist because under load both ends spend most of their
// time on these bodies. Each one is checked against encoding/json by a fuzz
// target in this package: an encoder's output reads back through
// encoding/json as what it encoded; a decoder never accepts a body that
// encoding/json refuses, and where it accepts one its result equals
// encoding/json's. A decoder that meets anything outside the shapes it knows
// (another field, null, a float, invalid UTF-8, a \u escape of a UTF-16
// surrogate, malformed JSON...) reports ok=false, and the caller decodes the
// body with encoding/json instead, which also words the errors.
//
// # Server and client
//
// The two ends differ in one respect, and it is a parameter here, not a
// second copy: what a string encoder does with text that JSON could carry in
// more than one way. AppendString takes an Escaping:
//
//   - [EscapeServer] (the server's answers) writes what encoding/json writes
//     without HTML escaping: invalid UTF-8 becomes U+FFFD (\ufffd), and
//     U+2028 and U+2029 are escaped. Records reach the server from any
//     client, so their bytes may not be UTF-8; the answer is still valid JSON.
//   - [EscapeClient] (the client's requests) escapes only '"', '\\' and
//     control characters, and passes every other byte through. The client
//     refuses a record that is not valid UTF-8 before encoding it (replacing
//     bytes would silently corrupt it), so its input is always UTF-8, and
//     U+2028 and U+2029 are valid raw in JSON.
//
// On the decoding side both ends hand a string with invalid UTF-8 to
// encoding/json (which replaces the bad bytes), so the decoders need no
// parameter.
package restwire
