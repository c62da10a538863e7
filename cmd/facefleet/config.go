package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/facefleet/facefleet/internal/settings"
)

// runConfig prints the declared settings: the README's table with -markdown,
// else one command's settings as resolved from the flags' defaults and this
// environment (so an operator can see what a tier would run with).
func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("config", "usage: facefleet config [-markdown | -for COMMAND]\n\nLists every setting: flag, environment variable, default, limits, commands.", stderr)
	markdown := fs.Bool("markdown", false, "print the README's configuration table")
	forCmd := fs.String("for", "", "list only the settings this command reads ("+commandList()+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *markdown {
		if *forCmd != "" {
			return errors.New("-markdown prints every setting; drop -for")
		}
		return settings.Markdown(stdout)
	}
	list := settings.All()
	if *forCmd != "" {
		cmd := settings.Command(*forCmd)
		if !slices.Contains(settings.Commands(), cmd) {
			return fmt.Errorf("-for %q: not one of %s", *forCmd, commandList())
		}
		list = settings.For(cmd)
	}
	for _, s := range list {
		fmt.Fprintf(stdout, "-%-20s %-30s %-12s %s\n", s.Name, s.Env, s.Default, s.Help)
	}
	return nil
}

func commandList() string {
	var names []string
	for _, c := range settings.Commands() {
		names = append(names, string(c))
	}
	return strings.Join(names, ", ")
}
