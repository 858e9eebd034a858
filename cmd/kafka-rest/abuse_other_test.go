//go:build !linux

package main

// The abuse suite (abuse_test.go) reads /proc and sets rlimits: Linux only.

const abuseChildEnv = "KAFKA_REST_ABUSE_REPORT"

func abuseChild(string) int { return 2 }
