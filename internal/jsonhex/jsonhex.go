// Package jsonhex reads the hex digits of JSON's \u escapes, for the
// project's hand-written JSON decoders (internal/restwire's REST wire,
// internal/jsonplan's typed payloads).
package jsonhex

// Hex4 returns the code unit spelled by the first four bytes of b, hex
// digits of either case, and whether they are four such digits (false when
// b is shorter).
func Hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
