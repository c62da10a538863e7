package main

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestApplyEnvFlagWins(t *testing.T) {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	port := fs.Int("port", 8000, "")
	idle := fs.Duration("idle-timeout", 30*time.Second, "")
	max := fs.Int("max-instances", 20, "")
	t.Setenv("FACEFLEET_PORT", "9000")
	t.Setenv("FACEFLEET_IDLE_TIMEOUT", "5s")
	t.Setenv("FACEFLEET_MAX_INSTANCES", "")
	if err := fs.Parse([]string{"-port", "8080"}); err != nil {
		t.Fatal(err)
	}
	binds := []envFlag{{"port", "FACEFLEET_PORT"}, {"idle-timeout", "FACEFLEET_IDLE_TIMEOUT"}, {"max-instances", "FACEFLEET_MAX_INSTANCES"}}
	if err := applyEnv(fs, binds); err != nil {
		t.Fatal(err)
	}
	if *port != 8080 || *idle != 5*time.Second || *max != 20 {
		t.Fatalf("port %d idle %s max %d; want the flag (8080), the env (5s), the default (20)", *port, *idle, *max)
	}
	t.Setenv("FACEFLEET_MAX_INSTANCES", "many")
	if err := applyEnv(fs, binds); err == nil {
		t.Fatal("a malformed env value was accepted")
	}
}
