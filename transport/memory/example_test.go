package memory_test

import (
	"context"
	"fmt"

	"github.com/kafkarpc/kafkarpc/transport"
	"github.com/kafkarpc/kafkarpc/transport/memory"
)

// A producer and a consumer group member on the embedded broker.
func Example() {
	ctx := context.Background()
	b, err := memory.New(memory.WithTopic("reports", 3))
	if err != nil {
		panic(err)
	}
	defer b.Close()

	// Join before producing: with the default StartLatest, the member
	// reads records produced after Subscribe returns.
	c, err := b.Subscribe(ctx, transport.Subscription{Group: "workers", Topics: []string{"reports"}})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	out, err := b.Produce(ctx, transport.Message{Topic: "reports", Key: "order-42", Value: []byte(`{"id":42}`)})
	if err != nil {
		panic(err)
	}
	fmt.Printf("produced to partition %d at offset %d\n", out[0].Partition, out[0].Offset)

	msgs, err := c.Poll(ctx)
	if err != nil {
		panic(err)
	}
	for _, m := range msgs {
		fmt.Printf("polled %s from partition %d\n", m.Value, m.Partition)
	}
	if err := c.Commit(ctx, msgs...); err != nil {
		panic(err)
	}
	next, _ := b.Committed("workers", "reports", out[0].Partition)
	fmt.Println("committed:", next)
	// Output:
	// produced to partition 0 at offset 0
	// polled {"id":42} from partition 0
	// committed: 1
}

// A Tail reader sees every record produced after Tail returns, on every
// partition, without joining a group.
func ExampleBroker_Tail() {
	ctx := context.Background()
	b, err := memory.New(memory.WithPartitions(2))
	if err != nil {
		panic(err)
	}
	defer b.Close()

	replies, err := b.Tail(ctx, "replies")
	if err != nil {
		panic(err)
	}
	defer replies.Close()
	if _, err := b.Produce(ctx,
		transport.Message{Topic: "replies", Partition: 1, ManualPartition: true, Value: []byte("done")}); err != nil {
		panic(err)
	}
	msgs, err := replies.Poll(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s on partition %d\n", msgs[0].Value, msgs[0].Partition)
	// Output:
	// done on partition 1
}

// Fetch reads a partition by offset, without a group, as the REST API's
// /fetch does.
func ExampleBroker_Fetch() {
	ctx := context.Background()
	b, err := memory.New()
	if err != nil {
		panic(err)
	}
	defer b.Close()
	for _, city := range []string{"Istanbul", "Izmir", "Ankara"} {
		if _, err := b.Produce(ctx, transport.Message{Topic: "cities", Value: []byte(city)}); err != nil {
			panic(err)
		}
	}
	msgs, err := b.Fetch(ctx, "cities", 0, 1, 10)
	if err != nil {
		panic(err)
	}
	for _, m := range msgs {
		fmt.Println(m.Offset, string(m.Value))
	}
	earliest, latest, _ := b.Offsets("cities", 0)
	fmt.Println("offsets:", earliest, latest)
	// Output:
	// 1 Izmir
	// 2 Ankara
	// offsets: 0 3
}
