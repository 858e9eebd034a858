// Package kafkahash places keyed records as Kafka's Java client and
// franz-go's default partitioner do, so that a key lands on the same
// partition through the embedded broker, transport/kafka and kafka-rest's
// Kafka backend: one implementation for all three.
package kafkahash

// Murmur2 is the 32-bit MurmurHash2 variant Kafka's Java client uses to
// place keyed records (org.apache.kafka.common.utils.Utils.murmur2): seed
// 0x9747b28c, little-endian 4-byte blocks, then the 1–3 tail bytes, then the
// final avalanche. It hashes the bytes of key, which for a Go string are the
// UTF-8 bytes Kafka's StringSerializer would send.
func Murmur2(key string) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(key)
	h := uint32(seed) ^ uint32(n)
	i := 0
	for ; i+4 <= n; i += 4 {
		k := uint32(key[i]) | uint32(key[i+1])<<8 | uint32(key[i+2])<<16 | uint32(key[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch n - i {
	case 3:
		h ^= uint32(key[i+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(key[i+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(key[i])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// Partition is Kafka's default partitioner for keyed records on a topic of
// n > 0 partitions: toPositive(Murmur2(key)) % n, where toPositive clears
// the sign bit.
func Partition(key string, n int32) int32 {
	return int32((Murmur2(key) & 0x7fffffff) % uint32(n))
}
