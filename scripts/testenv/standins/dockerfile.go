// A Dockerfile read the way BuildKit's frontend reads it, for what a build without an engine
// can still check and record: instructions, stages and --target, ARG/ENV scoping, the labels
// of the built stage, COPY/ADD sources in the context, and required secret mounts.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var instructions = map[string]bool{
	"ADD": true, "ARG": true, "CMD": true, "COPY": true, "ENTRYPOINT": true, "ENV": true, "EXPOSE": true,
	"FROM": true, "HEALTHCHECK": true, "LABEL": true, "MAINTAINER": true, "ONBUILD": true, "RUN": true,
	"SHELL": true, "STOPSIGNAL": true, "USER": true, "VOLUME": true, "WORKDIR": true,
}

// BuildKit's predefined args: usable without an ARG line, never "unconsumed".
var predefinedArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true, "FTP_PROXY": true,
	"ftp_proxy": true, "NO_PROXY": true, "no_proxy": true, "ALL_PROXY": true, "all_proxy": true,
	"BUILDKIT_INLINE_CACHE": true, "BUILDKIT_MULTI_PLATFORM": true, "BUILDKIT_SYNTAX": true,
	"SOURCE_DATE_EPOCH": true, "BUILDKIT_CONTEXT_KEEP_GIT_DIR": true,
}

// heredocRE is a heredoc marker: <<[-]["']NAME["'] (the quotes must pair).
var heredocRE = regexp.MustCompile(`^<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)(["']?)$`)

// Instruction is one logical line (continuations joined).
type Instruction struct {
	Line    int    // 1-based line where it starts
	Cmd     string // upper case
	Args    string // the rest, continuations joined
	Heredoc bool
}

// SplitInstructions parses the line structure: parser directives, comments, escaped line
// continuations and heredocs.
func SplitInstructions(text string) ([]Instruction, error) {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	escape := byte('\\')
	i := 0
	// Parser directives: only at the very top, as `# key=value`.
	for ; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "#") {
			break
		}
		k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(l, "#")), "=")
		if !ok || strings.Contains(strings.TrimSpace(k), " ") {
			break
		}
		if strings.EqualFold(strings.TrimSpace(k), "escape") {
			v = strings.TrimSpace(v)
			if v != "\\" && v != "`" {
				return nil, fmt.Errorf("dockerfile parse error on line %d: invalid escape token '%s' does not match ` or \\", i+1, v)
			}
			escape = v[0]
		}
	}
	var out []Instruction
	for ; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		start := i
		var b strings.Builder
		for {
			t := strings.TrimRight(lines[i], " \t")
			if len(t) > 0 && t[len(t)-1] == escape {
				b.WriteString(t[:len(t)-1])
				b.WriteByte(' ')
				// Skip comment and empty lines inside a continuation, as BuildKit does.
				for i+1 < len(lines) {
					n := strings.TrimSpace(lines[i+1])
					if n != "" && !strings.HasPrefix(n, "#") {
						break
					}
					i++
				}
				if i+1 >= len(lines) {
					break
				}
				i++
				continue
			}
			b.WriteString(t)
			break
		}
		full := strings.TrimSpace(b.String())
		cmd, args, _ := strings.Cut(full, " ")
		if j := strings.IndexAny(full, " \t"); j >= 0 {
			cmd, args = full[:j], strings.TrimSpace(full[j:])
		} else {
			cmd, args = full, ""
		}
		ins := Instruction{Line: start + 1, Cmd: strings.ToUpper(cmd), Args: args}
		if !instructions[ins.Cmd] {
			return nil, fmt.Errorf("dockerfile parse error on line %d: unknown instruction: %s", ins.Line, cmd)
		}
		// Heredocs (RUN/COPY/ADD <<EOF ... EOF): their body is not instructions. Only a word
		// that is a whole heredoc marker counts, and only if its terminator follows (so a
		// "<<" inside a quoted shell string never swallows the rest of the file).
		if ins.Cmd == "RUN" || ins.Cmd == "COPY" || ins.Cmd == "ADD" {
			for _, word := range strings.Fields(args) {
				m := heredocRE.FindStringSubmatch(word)
				if m == nil || (m[2] != m[4]) {
					continue
				}
				strip, term := m[1] == "-", m[3]
				end := -1
				for j := i + 1; j < len(lines); j++ {
					line := lines[j]
					if strip {
						line = strings.TrimLeft(line, "\t")
					}
					if line == term {
						end = j
						break
					}
				}
				if end >= 0 {
					ins.Heredoc = true
					i = end
				}
			}
		}
		out = append(out, ins)
	}
	return out, nil
}

// Stage is one FROM and what follows it.
type Stage struct {
	Index  int
	Name   string // AS name, lower case ("" if none)
	Base   string // the FROM image (args expanded), or an earlier stage's name
	Parent int    // index of the stage it is built FROM, or -1 for an image
	Line   int
	Labels map[string]string
	Vars   map[string]string // ARG and ENV values in scope at the end of the stage
	Uses   []int             // stages COPY --from / RUN --mount from= this one needs
	Copies []CopySource
	// Secrets its RUN --mount=type=secret lines use: id -> required.
	Secrets map[string]bool
}

// CopySource is a COPY/ADD source path in the build context.
type CopySource struct {
	Line int
	Path string
}

// Dockerfile is a parsed Dockerfile for one set of build args.
type Dockerfile struct {
	Stages []*Stage
	// Every ARG name declared anywhere (for "build-arg not consumed").
	Declared map[string]bool
}

// expand replaces $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:+alt} and ${VAR+alt};
// unknown reports whether a variable was not set.
func expand(s string, vars map[string]string) (out string, unknown bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if s[i+1] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				b.WriteString(s[i:])
				break
			}
			expr := s[i+2 : i+end]
			i += end
			name, op, word := expr, "", ""
			for _, o := range []string{":-", ":+", "-", "+"} {
				if k := strings.Index(expr, o); k > 0 {
					name, op, word = expr[:k], o, expr[k+len(o):]
					break
				}
			}
			v, set := vars[name]
			switch op {
			case ":-":
				if v == "" {
					v, _ = expand(word, vars)
				}
			case "-":
				if !set {
					v, _ = expand(word, vars)
				}
			case ":+":
				if v != "" {
					v, _ = expand(word, vars)
				}
			case "+":
				if set {
					v, _ = expand(word, vars)
				} else {
					v = ""
				}
			default:
				if !set {
					unknown = true
				}
			}
			b.WriteString(v)
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || j > i+1 && s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if j == i+1 {
			b.WriteByte(c)
			continue
		}
		v, set := vars[s[i+1:j]]
		if !set {
			unknown = true
		}
		b.WriteString(v)
		i = j - 1
	}
	return b.String(), unknown
}

// words splits shell-like words, honouring quotes and backslash escapes (quotes removed).
func words(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
				i++
				cur.WriteByte(s[i])
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unmatched quote %c", quote)
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

// keyValues parses LABEL/ENV arguments: k=v pairs, or the legacy `KEY VALUE...` form.
func keyValues(args string, vars map[string]string) ([][2]string, error) {
	ws, err := words(args)
	if err != nil {
		return nil, err
	}
	if len(ws) == 0 {
		return nil, fmt.Errorf("requires at least one argument")
	}
	if !strings.Contains(ws[0], "=") {
		if len(ws) < 2 {
			return nil, fmt.Errorf("requires at least two arguments in the KEY VALUE form")
		}
		v, _ := expand(strings.Join(ws[1:], " "), vars)
		k, _ := expand(ws[0], vars)
		return [][2]string{{k, v}}, nil
	}
	var out [][2]string
	for _, w := range ws {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("can't find = in %q: must be of the form name=value", w)
		}
		k, _ = expand(k, vars)
		v, _ = expand(v, vars)
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func copyVars(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// flagsOf splits leading --flag[=value] words off an instruction's arguments.
func flagsOf(ws []string) (map[string][]string, []string) {
	flags := map[string][]string{}
	i := 0
	for ; i < len(ws) && strings.HasPrefix(ws[i], "--"); i++ {
		k, v, _ := strings.Cut(strings.TrimPrefix(ws[i], "--"), "=")
		flags[k] = append(flags[k], v)
	}
	return flags, ws[i:]
}

// ParseDockerfile reads a Dockerfile for the given build args (name -> value).
func ParseDockerfile(text string, buildArgs map[string]string) (*Dockerfile, error) {
	ins, err := SplitInstructions(text)
	if err != nil {
		return nil, err
	}
	df := &Dockerfile{Declared: map[string]bool{}}
	global := map[string]string{}
	byName := map[string]int{}
	var st *Stage
	perr := func(line int, format string, a ...any) error {
		return fmt.Errorf("dockerfile parse error on line %d: %s", line, fmt.Sprintf(format, a...))
	}
	for _, in := range ins {
		switch in.Cmd {
		case "ARG":
			ws, err := words(in.Args)
			if err != nil || len(ws) == 0 {
				return nil, perr(in.Line, "ARG requires at least one argument")
			}
			for _, w := range ws {
				name, def, hasDef := strings.Cut(w, "=")
				df.Declared[name] = true
				scope := global
				if st != nil {
					scope = st.Vars
				}
				v, given := buildArgs[name]
				switch {
				case given:
				case hasDef:
					v, _ = expand(def, scope)
				case st != nil:
					// An ARG without a default in a stage takes the global one, if declared.
					if g, ok := global[name]; ok {
						v = g
					} else {
						continue
					}
				default:
					continue
				}
				if st == nil {
					global[name] = v
				} else {
					st.Vars[name] = v
				}
			}
		case "FROM":
			ws, err := words(in.Args)
			if err != nil {
				return nil, perr(in.Line, "%v", err)
			}
			_, ws = flagsOf(ws)
			if len(ws) != 1 && !(len(ws) == 3 && strings.EqualFold(ws[1], "AS")) {
				return nil, perr(in.Line, "FROM requires either one or three arguments")
			}
			base, _ := expand(ws[0], global)
			st = &Stage{Index: len(df.Stages), Base: base, Parent: -1, Line: in.Line,
				Labels: map[string]string{}, Vars: map[string]string{}, Secrets: map[string]bool{}}
			if p, ok := byName[strings.ToLower(base)]; ok {
				parent := df.Stages[p]
				st.Parent = p
				st.Labels = copyVars(parent.Labels)
				for k, v := range parent.Vars {
					st.Vars[k] = v
				}
			}
			if len(ws) == 3 {
				st.Name = strings.ToLower(ws[2])
				byName[st.Name] = st.Index
			}
			byName[strconv.Itoa(st.Index)] = st.Index
			df.Stages = append(df.Stages, st)
		default:
			if st == nil {
				return nil, perr(in.Line, "no build stage in current context")
			}
			switch in.Cmd {
			case "ENV":
				kvs, err := keyValues(in.Args, st.Vars)
				if err != nil {
					return nil, perr(in.Line, "ENV %v", err)
				}
				for _, kv := range kvs {
					st.Vars[kv[0]] = kv[1]
				}
			case "LABEL":
				kvs, err := keyValues(in.Args, st.Vars)
				if err != nil {
					return nil, perr(in.Line, "LABEL %v", err)
				}
				for _, kv := range kvs {
					st.Labels[kv[0]] = kv[1]
				}
			case "COPY", "ADD":
				if in.Heredoc {
					continue
				}
				var ws []string
				if a := strings.TrimSpace(in.Args); strings.HasPrefix(a, "[") {
					// JSON form, possibly after flags; flags come first in the shell form only.
					if err := json.Unmarshal([]byte(a), &ws); err != nil {
						return nil, perr(in.Line, "%s: invalid JSON array: %v", in.Cmd, err)
					}
				} else if ws, err = words(a); err != nil {
					return nil, perr(in.Line, "%v", err)
				}
				flags, rest := flagsOf(ws)
				if len(rest) < 2 {
					return nil, perr(in.Line, "%s requires at least two arguments", in.Cmd)
				}
				if from, ok := flags["from"]; ok {
					name, _ := expand(from[0], st.Vars)
					if i, ok := byName[strings.ToLower(name)]; ok {
						st.Uses = append(st.Uses, i)
					}
					continue
				}
				for _, src := range rest[:len(rest)-1] {
					if strings.Contains(src, "://") || strings.HasPrefix(src, "git@") {
						continue
					}
					p, unknown := expand(src, st.Vars)
					if unknown {
						continue
					}
					st.Copies = append(st.Copies, CopySource{Line: in.Line, Path: p})
				}
			case "RUN":
				ws, err := words(in.Args)
				if err != nil {
					continue // shell syntax is the shell's business
				}
				flags, _ := flagsOf(ws)
				for _, m := range flags["mount"] {
					opts := map[string]string{}
					for _, kv := range strings.Split(m, ",") {
						k, v, ok := strings.Cut(kv, "=")
						if !ok {
							v = "true"
						}
						opts[k] = v
					}
					switch opts["type"] {
					case "secret":
						id := opts["id"]
						if id == "" {
							id = filepath.Base(opts["target"])
						}
						st.Secrets[id] = st.Secrets[id] || opts["required"] == "true"
					}
					if from, ok := opts["from"]; ok {
						if i, ok := byName[strings.ToLower(from)]; ok {
							st.Uses = append(st.Uses, i)
						}
					}
				}
			}
		}
	}
	if len(df.Stages) == 0 {
		return nil, fmt.Errorf("dockerfile parse error: no build stage in current context (the Dockerfile has no FROM)")
	}
	return df, nil
}

// Target is the stage built for --target ("" = the last one).
func (df *Dockerfile) Target(name string) (*Stage, error) {
	if name == "" {
		return df.Stages[len(df.Stages)-1], nil
	}
	for _, s := range df.Stages {
		if s.Name == strings.ToLower(name) {
			return s, nil
		}
	}
	return nil, fmt.Errorf("target stage %q could not be found", name)
}

// Needed are the stages BuildKit builds for target: it, what it is built FROM, and what any
// of those copy or mount from, in order.
func (df *Dockerfile) Needed(target *Stage) []*Stage {
	seen := map[int]bool{}
	var visit func(i int)
	visit = func(i int) {
		if seen[i] {
			return
		}
		seen[i] = true
		s := df.Stages[i]
		if s.Parent >= 0 {
			visit(s.Parent)
		}
		for _, u := range s.Uses {
			visit(u)
		}
	}
	visit(target.Index)
	var out []*Stage
	for _, s := range df.Stages {
		if seen[s.Index] {
			out = append(out, s)
		}
	}
	return out
}

// MissingSources are the COPY/ADD sources of the needed stages that match nothing in the
// context dir (BuildKit: `failed to compute cache key: ... not found`). Globs are matched;
// .dockerignore is not applied (a source it hides passes here, and fails a real build).
func MissingSources(stages []*Stage, contextDir string) []CopySource {
	var out []CopySource
	for _, s := range stages {
		for _, c := range s.Copies {
			p := filepath.Join(contextDir, filepath.FromSlash(strings.TrimPrefix(c.Path, "/")))
			if strings.ContainsAny(c.Path, "*?[") {
				if m, err := filepath.Glob(p); err == nil && len(m) > 0 {
					continue
				}
			} else if _, err := os.Stat(p); err == nil {
				continue
			}
			out = append(out, c)
		}
	}
	return out
}

// UnusedArgs are build args no ARG declares (BuildKit ignores them).
func (df *Dockerfile) UnusedArgs(buildArgs map[string]string) []string {
	var out []string
	for k := range buildArgs {
		if !df.Declared[k] && !predefinedArgs[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
