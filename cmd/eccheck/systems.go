package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/db/ecstore"
	"github.com/eccheck/eccheck/db/etcd"
	"github.com/eccheck/eccheck/db/galera"
	"github.com/eccheck/eccheck/db/postgres"
	"github.com/eccheck/eccheck/db/redis"
	"github.com/eccheck/eccheck/docker"
)

// systems are the systems under test eccheck knows, in the order help
// lists them: the one registry. Adding a system is one folder under db/
// and one line here.
var systems = []db.DB{
	ecstore.DB{},
	postgres.DB{},
	etcd.DB{},
	redis.DB{},
	galera.DB{},
}

// systemNames lists the systems' names.
func systemNames() []string {
	out := make([]string, len(systems))
	for i, s := range systems {
		out[i] = s.Name()
	}
	return out
}

// lookupSystem finds the system --db names; an unknown one is a usage
// error.
func lookupSystem(name string) (db.DB, error) {
	for _, s := range systems {
		if s.Name() == name {
			return s, nil
		}
	}
	return nil, usagef("--db %q: want %s", name, strings.Join(systemNames(), " or "))
}

// systemHelp is one line per system, for --db's help.
func systemHelp() string {
	var b strings.Builder
	for _, s := range systems {
		fmt.Fprintf(&b, "  %-9s %s\n", s.Name(), s.Doc())
	}
	return b.String()
}

// imageSpecs are every image a system runs, in build order: the static
// images (seconds), the shared Debian base, then the Debian images built
// on the base's packages.
func imageSpecs() []docker.ImageSpec {
	var static, debian []docker.ImageSpec
	for _, s := range systems {
		for _, spec := range s.Images() {
			if spec.Static {
				static = append(static, spec)
			} else {
				debian = append(debian, spec)
			}
		}
	}
	return slices.Concat(static, []docker.ImageSpec{docker.Base}, debian)
}

// imageRoles are the roles of imageSpecs.
func imageRoles() []string {
	var out []string
	for _, s := range imageSpecs() {
		out = append(out, s.Role)
	}
	return out
}

// systemFlags binds every system's settings to f (their flags all exist on
// the command; --db picks the ones that count) and returns them by name,
// with the flag names each one bound.
type systemFlags struct {
	settings map[string]db.Settings
	flags    map[string][]string // system -> its flag names, in the order it binds them
	matrix   bool
}

func bindSystemFlags(f *pflag.FlagSet, use db.Use) *systemFlags {
	sf := &systemFlags{settings: map[string]db.Settings{}, flags: map[string][]string{}, matrix: use == db.UseMatrix}
	for _, s := range systems {
		st := s.NewSettings()
		fs := pflag.NewFlagSet(s.Name(), pflag.ContinueOnError)
		fs.SortFlags = false
		st.Bind(fs, use)
		fs.VisitAll(func(fl *pflag.Flag) {
			if f.Lookup(fl.Name) == nil {
				f.AddFlag(fl)
			}
			sf.flags[s.Name()] = append(sf.flags[s.Name()], fl.Name)
		})
		sf.settings[s.Name()] = st
	}
	return sf
}

// pick returns the settings of the system named, after refusing the flags
// of another system that have a prefix of their own (--pg-* with --db
// ecstore); another system's unprefixed flags are left unused.
func (sf *systemFlags) pick(sys db.DB, changed func(string) bool) (db.Settings, error) {
	for _, other := range systems {
		if other.Name() == sys.Name() {
			continue
		}
		prefix := sf.settings[other.Name()].FlagPrefix()
		if prefix == "" {
			continue
		}
		var given []string
		for _, name := range sf.flags[other.Name()] {
			if changed(name) && !slices.Contains(sf.flags[sys.Name()], name) {
				given = append(given, "--"+name)
			}
		}
		if len(given) > 0 && sf.matrix {
			var all []string
			for _, name := range sf.flags[other.Name()] {
				all = append(all, "--"+name)
			}
			return nil, usagef("%s go with --db %s", strings.Join(all, " and "), other.Name())
		}
		if len(given) > 0 {
			return nil, usagef("%s: the --%s* flags go with --db %s", strings.Join(given, ", "), prefix, other.Name())
		}
	}
	return sf.settings[sys.Name()], nil
}
