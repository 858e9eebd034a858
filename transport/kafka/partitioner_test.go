package kafka

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Vectors of Apache Kafka's UtilsTest.testMurmur2 and the embedded
// broker's own table (every tail length and the empty key).
func TestMurmur2Vectors(t *testing.T) {
	for key, want := range map[string]int32{
		"": 275646681, "a": -1563381124, "21": -973932308, "abc": 479470107, "1234": -1614185708,
		"foobar": -790332482, "a-little-bit-long-string": -985981536, "a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "é": 186971271,
	} {
		assert.Equal(t, want, int32(murmur2(key)), "murmur2(%q)", key)
	}
}
