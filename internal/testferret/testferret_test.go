package testferret_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/internal/testferret"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStart(t *testing.T) {
	t.Run("serves_the_mongo_protocol_until_cleanup", func(t *testing.T) {
		uri := testferret.Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client, err := mongo.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
		coll := client.Database("t").Collection("c")
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "n", Value: int64(7)}}); err != nil {
			t.Fatalf("insert: %v", err)
		}
		var got struct {
			N int64 `bson:"n"`
		}
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil || got.N != 7 {
			t.Fatalf("find = %+v, %v; want n 7", got, err)
		}
	})
	t.Run("gives_each_call_its_own_server", func(t *testing.T) {
		a, b := testferret.Start(t), testferret.Start(t)
		if a == b {
			t.Errorf("two servers share the address %s", a)
		}
	})
}
