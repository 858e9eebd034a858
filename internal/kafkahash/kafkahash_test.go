package kafkahash

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The expected hashes were derived from the algorithm's definition (Kafka's
// Utils.murmur2) by a separate implementation in Python with explicit 32-bit
// arithmetic, and agree with the vectors Apache Kafka publishes in
// UtilsTest.testMurmur2 ("21", "foobar", the two long strings and "abc").
// Together they cover every tail length (0 to 3 bytes after the 4-byte
// blocks) and the empty key.
func TestMurmur2MatchesKafka(t *testing.T) {
	tests := []struct {
		key  string
		want int32 // as Java's int
	}{
		{"", 275646681},
		{"a", -1563381124},
		{"21", -973932308},
		{"abc", 479470107},
		{"1234", -1614185708},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"é", 186971271}, // UTF-8 bytes c3 a9
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.key), func(t *testing.T) {
			assert.Equal(t, tt.want, int32(Murmur2(tt.key)))
		})
	}
}

// Step by step for "abc" (n = 3, no 4-byte block), as the Python derivation
// printed the intermediate values:
//
//	h = 0x9747b28c ^ 3                    = 0x9747b28f
//	tail: h ^= 'c'<<16 ^ 'b'<<8 ^ 'a'; h *= 0x5bd1e995 = 0xa6e43886
//	h ^= h >> 13                          = 0xa6e10fa7
//	h *= 0x5bd1e995                       = 0x1c941b33
//	h ^= h >> 15                          = 0x1c94221b (479470107)
func TestMurmur2Steps(t *testing.T) {
	const m = 0x5bd1e995
	h := uint32(0x9747b28c) ^ 3
	require.Equal(t, uint32(0x9747b28f), h)
	h ^= uint32('c')<<16 ^ uint32('b')<<8 ^ uint32('a')
	h *= m
	require.Equal(t, uint32(0xa6e43886), h)
	h ^= h >> 13
	require.Equal(t, uint32(0xa6e10fa7), h)
	h *= m
	require.Equal(t, uint32(0x1c941b33), h)
	h ^= h >> 15
	require.Equal(t, uint32(0x1c94221b), h)
	require.Equal(t, h, Murmur2("abc"))
}

// toPositive(Murmur2(key)) % n, with the values of the derivation above.
func TestPartitionForKey(t *testing.T) {
	tests := []struct {
		key  string
		n    int32
		want int32
	}{
		{"21", 12, 0},       // 1173551340 % 12
		{"abc", 12, 3},      // 479470107 % 12
		{"foobar", 12, 6},   // (-790332482 & 0x7fffffff) = 1357151166; % 12
		{"foobar", 4, 2},    // 1357151166 % 4
		{"foobar", 50, 16},  // 1357151166 % 50
		{"a", 3, 1},         // 584102524 % 3
		{"1234", 1, 0},      // one partition
		{"key-2", 3, 2},     // 852269702 % 3
		{"order-42", 12, 0}, // 501153024 % 12
		{"a-little-bit-longer-string", 12, 11},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Partition(tt.key, tt.n), "key %q over %d partitions", tt.key, tt.n)
	}
}

// Vectors of Apache Kafka's UtilsTest.testMurmur2 and the embedded
// broker's own table (every tail length and the empty key).
func TestMurmur2Vectors(t *testing.T) {
	for key, want := range map[string]int32{
		"": 275646681, "a": -1563381124, "21": -973932308, "abc": 479470107, "1234": -1614185708,
		"foobar": -790332482, "a-little-bit-long-string": -985981536, "a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "é": 186971271,
	} {
		assert.Equal(t, want, int32(Murmur2(key)), "murmur2(%q)", key)
	}
}
