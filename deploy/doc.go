// Package deploy holds the deployment files of kafka-rest and of the
// reports worker: systemd units (systemd/), supervisor program blocks
// (supervisor/) and the environment files they read (env/). The project
// README's "Deployment" section explains them. It has no Go code; its test
// checks that every flag and environment variable the files use exists in
// the binaries, that their stop timeouts cover the graceful stop, and runs
// the supervisor setup's commands for real.
package deploy
