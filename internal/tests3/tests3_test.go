package tests3_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/internal/tests3"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(tests3.Main(m)) }

func client(t *testing.T, b tests3.Bucket) *s3.Client {
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	return s3.New(s3.Options{Region: tests3.Region, BaseEndpoint: aws.String(b.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(b.AccessKey, b.SecretKey, ""), HTTPClient: &http.Client{Transport: transport},
		RetryMaxAttempts: 1})
}

func put(ctx context.Context, c *s3.Client, b tests3.Bucket, key, body string) error {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b.Name), Key: aws.String(key), Body: bytes.NewReader([]byte(body))})
	return err
}

func get(ctx context.Context, c *s3.Client, b tests3.Bucket, key string) (string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.Name), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	return string(body), err
}

// Each test gets an empty bucket of its own on the shared server, which takes its key alone.
func TestNewBucket(t *testing.T) {
	ctx := context.Background()
	a, b := tests3.NewBucket(t), tests3.NewBucket(t)
	if a.Name == b.Name || a.Endpoint != b.Endpoint {
		t.Fatalf("buckets %+v and %+v; want two on one server", a, b)
	}
	c := client(t, a)
	if err := put(ctx, c, a, "certificates/x.pdf", "%PDF-"); err != nil {
		t.Fatal(err)
	}
	if got, err := get(ctx, c, a, "certificates/x.pdf"); err != nil || got != "%PDF-" {
		t.Errorf("read back %q, %v", got, err)
	}
	if _, err := get(ctx, c, b, "certificates/x.pdf"); err == nil {
		t.Error("the other bucket has the object too")
	}
	wrong := a
	wrong.SecretKey = "not-the-secret"
	if err := put(ctx, client(t, wrong), wrong, "y", "y"); err == nil {
		t.Error("a wrong secret wrote an object")
	}
}

// A server of a test's own can be stopped, as an outage looks, and comes back with its data.
func TestStopAndRestart(t *testing.T) {
	began := time.Now()
	srv := tests3.Start(t)
	t.Logf("started in %v", time.Since(began))
	b := srv.NewBucket(t)
	c := client(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := put(ctx, c, b, "k", "before"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := put(ctx, c, b, "k2", "during"); err == nil {
		t.Fatal("a stopped server took an object")
	}
	began = time.Now()
	srv.Restart(t)
	t.Logf("restarted in %v", time.Since(began))
	ctx, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if got, err := get(ctx, c, b, "k"); err != nil || got != "before" {
		t.Errorf("after the restart: %q, %v; want the object written before", got, err)
	}
}
