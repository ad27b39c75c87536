package pipelines

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateAgreesWithRun holds validate and run to one verdict on
// every pipeline file in testdata: `sluice validate` is Load; `sluice run`
// is Load, then Build, which makes every source, sink and store. A file
// that Build would refuse for its content must fail Load with the same
// positioned errors, and one that Load accepts must build. Files the
// decoder already refuses never reach Build, so for them Build is given
// what the decoder made of them without validation, and must refuse it
// with Load's errors too.
func TestValidateAgreesWithRun(t *testing.T) {
	// What the machine provides (AWS region and credentials) is there, so
	// that only the file decides.
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "S3RVER")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "S3RVER")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	env := map[string]string{"LOG_DIR": "/srv/logs", "POLL": "750ms", "STATUS": "200"}
	for k, v := range testEnv {
		env[k] = v
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	files, err := filepath.Glob("testdata/*/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(file, ".yaml"), func(t *testing.T) {
			_, validateErr := Load(file, lookup)

			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			spec, decodeErrs := decodeFile(file, data, lookup)
			spec.Dir = filepath.Dir(file)
			var runErr error
			if len(decodeErrs) == 0 {
				runErr = build(t, spec)
			}
			switch {
			case validateErr == nil && runErr != nil:
				t.Fatalf("validate accepts the file, run refuses it:\n%v", runErr)
			case validateErr != nil && len(decodeErrs) == 0 && runErr == nil:
				t.Fatalf("validate refuses the file, run builds it:\n%v", validateErr)
			case validateErr != nil && runErr != nil && validateErr.Error() != runErr.Error():
				t.Fatalf("validate and run refuse the file differently:\nvalidate:\n%v\nrun:\n%v", validateErr, runErr)
			}
			var list ErrorList
			if runErr != nil && !errors.As(runErr, &list) {
				t.Errorf("run refuses the file without a position: %v", runErr)
			}
		})
	}
}

// build builds spec as `sluice run` does, with relative paths in a
// temporary directory, and releases what it made.
func build(t *testing.T, spec *Spec) error {
	p, err := Build(spec, BuildOptions{Dir: t.TempDir(), Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		return err
	}
	closeAll(p)
	return nil
}
