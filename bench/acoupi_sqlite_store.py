"""The `acoupi bench store` workload on Python acoupi's SQLite stores.

Written for acoupi-rs: `acoupi bench store --compare-acoupi PYTHON` runs this script
with the given interpreter (where `acoupi` imports) and sets the figures beside its
own. It uses acoupi's public API only: `acoupi.components.SqliteStore` and
`SqliteMessageStore` (https://acoupi.github.io/acoupi/), and `acoupi.data`.

The workload is the Rust benchmark's (src/cli/bench/store.rs), step by step:
store_recording, store_model_output (DETECTIONS detections x TAGS tags each),
store_message, get_unsent_messages in batches of BATCH with a SUCCESS response stored
for each message (store_response), LOOKUPS look-ups of one recording by path, and the
same look-ups once the store holds BIG recordings (filled with one INSERT ... SELECT).

Prints one JSON object per step: {"step": NAME, "operations": N, "seconds": S}.
"""

import argparse
import datetime
import json
import sqlite3
import sys
import time
import uuid
from pathlib import Path

from acoupi import data
from acoupi.components import SqliteMessageStore, SqliteStore

SPECIES = ["Turdus merula", "Erithacus rubecula", "Parus major", "Fringilla coelebs"]
START = datetime.datetime(2026, 5, 1, 4, 0, 0, tzinfo=datetime.timezone.utc)


def report(step, operations, seconds):
    print(
        json.dumps({"step": step, "operations": operations, "seconds": seconds}),
        flush=True,
    )


def make_recording(deployment, folder, i):
    return data.Recording(
        duration=3.0,
        samplerate=48_000,
        deployment=deployment,
        created_on=START + datetime.timedelta(seconds=10 * i),
        path=folder / "audio" / f"rec-{i:06}.wav",
    )


def make_output(recording, detections, tags):
    found = []
    for d in range(detections):
        start = d * 0.5
        found.append(
            data.Detection(
                prediction_type=data.PredictionType.EVENT,
                location=data.BoundingBox.from_coordinates(
                    start, 1_000.0, start + 0.4, 8_000.0
                ),
                detection_score=0.5 + 0.05 * (d % 10),
                tags=[
                    data.PredictedTag(
                        tag=data.Tag(key="species", value=SPECIES[(d + t) % len(SPECIES)]),
                        confidence_score=0.9 - 0.1 * (t % 9),
                    )
                    for t in range(tags)
                ],
            )
        )
    return data.ModelOutput(
        name_model="bench_model",
        recording=recording,
        detections=found,
        created_on=recording.created_on + datetime.timedelta(seconds=4),
    )


def lookups(store, recordings, count):
    """`count` look-ups by path, the Rust benchmark's walk (a prime stride)."""
    timer = time.perf_counter()
    for n in range(count):
        recording = recordings[(n * 7_919) % len(recordings)]
        found = store.get_recordings_by_path([recording.path])
        if len(found) != 1 or len(found[0][1]) != 1:
            sys.exit(f"looking up {recording.path} found {len(found)} recordings")
    return time.perf_counter() - timer


def fill(db, big, start_at):
    """`big` more recordings (numbered from `start_at`) on the store's one deployment,
    in one statement, so the store holds `start_at + big`."""
    connection = sqlite3.connect(str(db))
    with connection:
        connection.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?)
            INSERT INTO recording (id, path, duration_s, samplerate_hz, audio_channels,
                                   datetime, deployment_id)
            SELECT randomblob(16), 'filler/rec-' || i || '.wav', 3.0, 48000, 1,
                   strftime('%Y-%m-%dT%H:%M:%f+00:00', '2020-01-01', '+' || i || ' seconds'),
                   (SELECT id FROM deployment LIMIT 1)
            FROM n
            """,
            (start_at, start_at + big - 1),
        )
    connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--recordings", type=int, default=2_000)
    parser.add_argument("--detections", type=int, default=5)
    parser.add_argument("--tags", type=int, default=2)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lookups", type=int, default=1_000)
    parser.add_argument("--big", type=int, default=100_000)
    args = parser.parse_args()

    folder = args.dir
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "acoupi.db"
    if db.exists():
        sys.exit(f"{db} exists: the benchmark writes a new file")
    store = SqliteStore(db)
    messages = SqliteMessageStore(folder / "messages.db")

    deployment = data.Deployment(name="bench", started_on=START)
    store.store_deployment(deployment)
    recordings = [make_recording(deployment, folder, i) for i in range(args.recordings)]
    timer = time.perf_counter()
    for recording in recordings:
        store.store_recording(recording)
    report("store_recording", len(recordings), time.perf_counter() - timer)

    outputs = [make_output(r, args.detections, args.tags) for r in recordings]
    timer = time.perf_counter()
    for output in outputs:
        store.store_model_output(output)
    report("store_model_output", len(outputs), time.perf_counter() - timer)

    bodies = [
        data.Message(
            content=json.dumps(
                {"recording": str(uuid.uuid4()), "species": "Turdus merula", "score": 0.9, "n": i}
            ),
            message_type=data.MessageType.DETECTION,
            created_on=START + datetime.timedelta(milliseconds=100 * i),
        )
        for i in range(args.messages)
    ]
    timer = time.perf_counter()
    for message in bodies:
        messages.store_message(message)
    report("store_message", len(bodies), time.perf_counter() - timer)

    fetching = responding = 0.0
    batches = responses = 0
    while True:
        timer = time.perf_counter()
        unsent = messages.get_unsent_messages(limit=args.batch, order="oldest_first")
        fetching += time.perf_counter() - timer
        batches += 1
        if not unsent:
            break
        if responses + len(unsent) > args.messages:
            sys.exit("more unsent messages than stored")
        timer = time.perf_counter()
        for message in unsent:
            messages.store_response(
                data.Response(status=data.ResponseStatus.SUCCESS, message=message)
            )
            responses += 1
        responding += time.perf_counter() - timer
    report("get_unsent_messages", batches, fetching)
    report("store_response", responses, responding)

    if recordings:
        report("get_recordings_by_path", args.lookups, lookups(store, recordings, args.lookups))
        fill(db, max(args.big - len(recordings), 0), len(recordings))
        report(
            "get_recordings_by_path_big",
            args.lookups,
            lookups(store, recordings, args.lookups),
        )


if __name__ == "__main__":
    main()
