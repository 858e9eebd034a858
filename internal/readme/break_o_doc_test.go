package readme

import (
	"go/ast"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// docImports are the packages a doc comment's code may name, by name.
var docImports = map[string]string{
	"context":    "context",
	"errors":     "errors",
	"fmt":        "fmt",
	"log":        "log",
	"testing":    "testing",
	"time":       "time",
	"rpc":        "github.com/kafkarpc/kafkarpc/rpc",
	"rpctest":    "github.com/kafkarpc/kafkarpc/rpctest",
	"transport":  "github.com/kafkarpc/kafkarpc/transport",
	"memory":     "github.com/kafkarpc/kafkarpc/transport/memory",
	"upstash":    "github.com/kafkarpc/kafkarpc/transport/upstash",
	"restserver": "github.com/kafkarpc/kafkarpc/restserver",
	"resttest":   "github.com/kafkarpc/kafkarpc/resttest",
	"otelrpc":    "github.com/kafkarpc/kafkarpc/otelrpc",
}

var qualified = regexp.MustCompile(`\b([a-z]+)\.[A-Z]`)

// TestDocDeclarationBlocksCompile is TestREADMEGoBlocks for the go doc
// pages: a code block in a doc comment that is a whole declaration ("func
// TestConformance(t *testing.T) {...}") is what a user pastes into a file,
// so it must compile. Fragments (statements with free variables) are not
// checked. breakO: rpctest.TestTransport's example returned memory.New's two
// results from a function of one ("too many return values").
func TestDocDeclarationBlocksCompile(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	var blocks []string
	var where []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		var docs []*ast.CommentGroup
		if f.Doc != nil {
			docs = append(docs, f.Doc)
		}
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				docs = append(docs, decl.Doc)
			case *ast.GenDecl:
				docs = append(docs, decl.Doc)
				for _, s := range decl.Specs {
					if ts, ok := s.(*ast.TypeSpec); ok {
						docs = append(docs, ts.Doc)
					}
				}
			}
		}
		var p comment.Parser
		for _, cg := range docs {
			if cg == nil {
				continue
			}
			for _, b := range p.Parse(cg.Text()).Content {
				if c, ok := b.(*comment.Code); ok && strings.HasPrefix(c.Text, "func ") {
					rel, _ := filepath.Rel(root, path)
					blocks = append(blocks, c.Text)
					where = append(where, rel)
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, blocks, "the doc comments have declaration blocks (rpctest.TestTransport's)")

	for i, src := range blocks {
		used := map[string]bool{}
		for _, m := range qualified.FindAllStringSubmatch(src, -1) {
			if _, ok := docImports[m[1]]; ok {
				used[m[1]] = true
			}
		}
		var names []string
		for n := range used {
			names = append(names, n)
		}
		sort.Strings(names)
		var file strings.Builder
		file.WriteString("package docblock_test\n\nimport (\n")
		for _, n := range names {
			file.WriteString("\t\"" + docImports[n] + "\"\n")
		}
		file.WriteString(")\n\n" + src)
		dir, err := os.MkdirTemp(root, "_docblock-")
		require.NoError(t, err)
		t.Cleanup(func() { os.RemoveAll(dir) })
		require.NoError(t, os.WriteFile(filepath.Join(dir, "block_test.go"), []byte(file.String()), 0o644))
		vet := exec.Command("go", "vet", "./"+filepath.Base(dir))
		vet.Dir = root
		out, err := vet.CombinedOutput()
		require.NoError(t, err, "the code block in the doc of %s does not compile:\n%s\n%s", where[i], file.String(), out)
	}
}
