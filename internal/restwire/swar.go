package restwire

// Word-at-a-time scanning of JSON strings (SWAR, "SIMD within a
// register"): the strings of the hot bodies are mostly printable ASCII
// (UUIDs, names, numbers, small JSON payloads), so the scans look at eight
// bytes at once for the first byte that needs a closer look, then hand
// that byte to the byte-at-a-time code.

const (
	swarLSB  = 0x0101010101010101 // the low bit of every byte
	swarMSB  = 0x8080808080808080 // the high bit of every byte
	swarLow7 = 0x7f7f7f7f7f7f7f7f // the low seven bits of every byte
)

// stopBytes returns a word with the high bit of byte k set (and no other
// bit) exactly when byte k of x is '"', '\\' or a control character
// (< 0x20), or, when high is swarMSB rather than 0, a byte >= 0x80. Byte 0
// is the low byte: with x loaded little endian, the first such byte in
// memory is bits.TrailingZeros64(m)/8.
//
// Every flag is exact, not only the lowest: each sum works on a byte's low
// seven bits and stays below 0x100, so no carry or borrow crosses into the
// next byte (the classic x-0x0101..01 tests borrow, and then flag a byte
// above a true match falsely). For a byte b with its low seven bits l:
// l+0x60 reaches 0x80 when l >= 0x20; (l^'"')+0x7f reaches 0x80 when l is
// not '"', the same for '\\'; b's own high bit, tested apart, tells a
// byte >= 0x80 from the ASCII byte with the same low bits.
func stopBytes(x, high uint64) uint64 {
	l := x & swarLow7
	notCtl := l + swarLSB*(0x80-0x20)
	notQuote := (l ^ swarLSB*'"') + swarLow7
	notBackslash := (l ^ swarLSB*'\\') + swarLow7
	return (^(notCtl&notQuote&notBackslash | x) | x&high) & swarMSB
}

// load64 returns the eight bytes of s from i on as a little-endian word
// (the compiler makes it one load on amd64, seen with -gcflags=-S).
// i+8 <= len(s).
func load64[T string | []byte](s T, i int) uint64 {
	w := s[i : i+8] // one bounds check for the eight bytes
	return uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
}
