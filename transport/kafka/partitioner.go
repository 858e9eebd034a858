package kafka

// murmur2 is the 32-bit MurmurHash2 that Kafka's Java client (and
// franz-go's default KafkaHasher) use to place keyed records: seed
// 0x9747b28c, 4-byte little-endian blocks, the 1–3 tail bytes, then the
// final mix. It must agree bit for bit with the embedded broker's, so that
// a key lands on the same partition on both (a test checks it).
func murmur2(key string) uint32 {
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

// partitionForKey is Kafka's default placement of a keyed record on a topic
// of n partitions: toPositive(murmur2(key)) % n.
func partitionForKey(key string, n int32) int32 {
	return int32((murmur2(key) & 0x7fffffff) % uint32(n))
}
