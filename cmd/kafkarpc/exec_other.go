//go:build !unix

package main

import "os/exec"

// killTree leaves cmd's cancellation as exec.CommandContext makes it where
// there are no process groups.
func killTree(*exec.Cmd) {}
