package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/server"
	"github.com/sluice-dev/sluice/engine/supervise"
	"github.com/sluice-dev/sluice/pipelines"
)

// watcher is sluice run --watch: it reads the pipeline files again every
// interval and compares their content (a SHA-256 of the bytes; polling,
// which works on every file system, network mounts and editors that
// replace files included). A changed file is loaded and checked; if it is
// valid and its pipeline can resume from the checkpoint, the pipeline is
// replaced (it stops cleanly, then the new build resumes from its last
// checkpoint); if not, the old pipeline runs on, and the problems, with
// their lines and columns, are logged and shown by the server. A file
// added to a directory given starts a pipeline; a removed file stops its
// pipeline. The other pipelines are not touched.
type watcher struct {
	args  []string
	every time.Duration
	group *supervise.Group
	srv   *server.Server // nil: no server
	log   *slog.Logger
	opts  pipelines.BuildOptions

	files map[string]*watchedFile
}

// watchedFile is what the watcher knows of one file.
type watchedFile struct {
	sum [sha256.Size]byte
	// spec is the file as its pipeline runs it; nil when no pipeline runs
	// from the file (it was never valid).
	spec *pipelines.Spec
}

// start records the files loaded at start.
func (w *watcher) start(specs []*pipelines.Spec) {
	w.files = map[string]*watchedFile{}
	for _, s := range specs {
		data, err := os.ReadFile(s.File)
		if err != nil {
			continue // seen as a change at the first poll
		}
		w.files[s.File] = &watchedFile{sum: sha256.Sum256(data), spec: s}
	}
}

func (w *watcher) run(ctx context.Context) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.poll(ctx)
		}
	}
}

// poll looks at every file once.
func (w *watcher) poll(ctx context.Context) {
	files, err := pipelineFiles(w.existing())
	if err != nil {
		w.log.Warn("watch: cannot list the pipeline files", "err", err)
		return
	}
	present := map[string]bool{}
	for _, f := range files {
		present[f] = true
	}
	for f, wf := range w.files {
		if !present[f] && ctx.Err() == nil {
			w.removed(f, wf)
		}
	}
	for _, f := range files {
		if ctx.Err() != nil {
			return
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue // removed or unreadable for a moment: the next poll sees
		}
		sum := sha256.Sum256(data)
		wf := w.files[f]
		if wf != nil && wf.sum == sum {
			continue
		}
		if wf == nil {
			wf = &watchedFile{}
			w.files[f] = wf
		}
		wf.sum = sum
		w.changed(ctx, f, wf, data)
	}
}

// existing returns the arguments that still exist: a file given by name
// that was removed no longer lists.
func (w *watcher) existing() []string {
	var out []string
	for _, a := range w.args {
		if _, err := os.Stat(a); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func (w *watcher) removed(f string, wf *watchedFile) {
	delete(w.files, f)
	if w.srv != nil {
		w.srv.FileLoaded(f, "", false) // forget a refusal of it
	}
	if wf.spec == nil {
		return
	}
	w.log.Info("pipeline file removed: stopping its pipeline", "file", f, "pipeline", wf.spec.Name)
	if err := w.group.Remove(wf.spec.Name); err != nil {
		w.log.Warn("watch: stop a removed file's pipeline", "pipeline", wf.spec.Name, "err", err)
	}
}

// changed loads the new content of f and starts, replaces or keeps its
// pipeline.
func (w *watcher) changed(ctx context.Context, f string, wf *watchedFile, data []byte) {
	old := wf.spec
	spec, err := pipelines.Parse(f, filepath.Dir(f), data, nil)
	if err == nil {
		err = w.checkName(f, spec)
	}
	if err == nil && old != nil && old.Name == spec.Name {
		err = checkResume(ctx, spec, w.opts)
	}
	if err != nil {
		w.reject(f, old, err)
		return
	}
	switch {
	case old == nil:
		err = w.group.Add(spec.Name, rebuild(spec, w.opts, nil))
		if err == nil {
			w.log.Info("pipeline file added: starting its pipeline", "file", f, "pipeline", spec.Name)
		}
	case old.Name == spec.Name:
		err = w.group.Replace(spec.Name, rebuild(spec, w.opts, nil))
		if err == nil {
			w.log.Info("pipeline file changed: reloading its pipeline (it stops cleanly and the new one resumes from its checkpoint)", "file", f, "pipeline", spec.Name)
		}
	default:
		w.log.Info("pipeline file renamed its pipeline: stopping the old one, starting the new one (each has its own checkpoint)", "file", f, "was", old.Name, "pipeline", spec.Name)
		if rerr := w.group.Remove(old.Name); rerr != nil {
			w.log.Warn("watch: stop the renamed pipeline", "pipeline", old.Name, "err", rerr)
		}
		wf.spec = nil
		err = w.group.Add(spec.Name, rebuild(spec, w.opts, nil))
	}
	if err != nil {
		w.reject(f, wf.spec, err)
		return
	}
	wf.spec = spec
	if w.srv != nil {
		w.srv.FileLoaded(f, spec.Name, old != nil)
	}
}

// checkName refuses a file whose pipeline has the name of another file's.
func (w *watcher) checkName(f string, spec *pipelines.Spec) error {
	var specs []*pipelines.Spec
	for g, wf := range w.files {
		if g != f && wf.spec != nil {
			specs = append(specs, wf.spec)
		}
	}
	return pipelines.CheckNames(append(specs, spec))
}

// reject logs why a change of f was not loaded and shows it; the
// pipeline of old, if any, runs on as it was.
func (w *watcher) reject(f string, old *pipelines.Spec, err error) {
	name := ""
	if old != nil {
		name = old.Name
	}
	msg := "pipeline file changed but not loaded; its pipeline runs on as it was"
	if old == nil {
		msg = "pipeline file not loaded"
	}
	w.log.Error(msg, "file", f, "pipeline", name, "problems", err.Error())
	if w.srv != nil {
		w.srv.FileRejected(f, name, err)
	}
}

// checkResume tells whether the pipeline of spec can resume from the
// checkpoint its running version writes: a fresh build restores the
// checkpoint's state into its steps and is thrown away. A step whose
// state the new definition cannot take (a window whose group_by or
// aggregates changed) makes the reload refused, with what to do, rather
// than stopping a pipeline that would then fail to start.
func checkResume(ctx context.Context, spec *pipelines.Spec, opts pipelines.BuildOptions) error {
	opts.Logger = slog.New(slog.DiscardHandler)
	p, err := pipelines.Build(spec, opts)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range p.Sinks {
			if c, ok := s.Sink.(io.Closer); ok {
				c.Close()
			}
		}
	}()
	if err := engine.CheckResume(ctx, p); err != nil {
		return fmt.Errorf("%s: %w", spec.File, err)
	}
	return nil
}
