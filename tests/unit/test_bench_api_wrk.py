"""``bench/api.py``'s wrk load generator: its Lua script and the parsing of wrk's output.

wrk 4 adds coordinated-omission samples to its latency histogram before it
prints it or hands it to the script; the benchmark takes them out again so
that its percentiles mean what the Python generator's mean. These tests apply
wrk's correction (``stats_correct`` in wrk's ``stats.c``, written out here)
to known latencies and check that :func:`bench.api.uncorrected` gives them
back, and parse a canned wrk output. No wrk and no server run here.
"""

from __future__ import annotations

import random

import orjson

from bench import api


def wrk_correct(
    measured: dict[int, int], requests: int, duration_us: int, clients: int
) -> dict[int, int]:
    """What wrk 4's ``stats_correct`` makes of a histogram (value µs -> count)."""
    data = dict(measured)
    expected = duration_us // (requests // clients)
    for value in range(expected * 2, max(measured) + 1):
        count = measured.get(value, 0)  # wrk reads each value before any lower one changes
        lower = value - expected
        while count and lower > expected:
            data[lower] = data.get(lower, 0) + count
            lower -= expected
    return data


def test_uncorrected_gives_back_the_measured_latencies() -> None:
    rng = random.Random(6)
    measured: dict[int, int] = {}
    for _ in range(3000):
        value = rng.randint(150, 900) if rng.random() < 0.97 else rng.randint(20_000, 400_000)
        measured[value] = measured.get(value, 0) + 1
    requests = sum(measured.values())
    clients = 4
    duration_us = sum(v * c for v, c in measured.items()) // clients
    corrected = wrk_correct(measured, requests, duration_us, clients)
    assert sum(corrected.values()) > requests  # the correction did add samples

    histogram = [[value, count] for value, count in sorted(corrected.items())]
    assert api.uncorrected(histogram, requests, duration_us, clients) == measured


def test_parse_wrk_counts_errors_and_reports_both_percentiles() -> None:
    measured = {200: 90, 300: 9, 50_000: 1}
    requests = 100
    output = "\n".join(
        [
            "Running 1s test @ http://127.0.0.1:8000",
            "  1 threads and 1 connections",
            "  Latency Distribution",
            "     50%  200.00us",
            "     75%  300.00us",
            "     90%   40.00ms",
            "     99%   49.95ms",
            "  100 requests in 1.00s, 10.00KB read",
            "WRK-JSON "
            + orjson.dumps(
                {
                    "requests": requests,
                    "duration_us": 1_000_000,
                    "statuses": {"200": 98, "429": 2},
                    "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 1},
                    "max_us": 50_000,
                    # 1 client, 10,000 µs between requests: 50 ms adds 40, 30 and 20 ms
                    "histogram": [
                        [200, 90],
                        [300, 9],
                        [20_000, 1],
                        [30_000, 1],
                        [40_000, 1],
                        [50_000, 1],
                    ],
                }
            ).decode(),
        ]
    )
    figures = api.parse_wrk(output, clients=1)
    assert figures["requests"] == requests
    assert figures["latencies_measured"] == sum(measured.values())
    assert figures["errors"] == 3  # two 429 answers and a timeout
    assert figures["p50_ms"] == 0.2
    assert figures["p99_ms"] == 0.3  # the 99th of 100 measured latencies
    assert figures["max_ms"] == 50.0
    assert figures["wrk_latency_ms"] == {"50": 0.2, "75": 0.3, "90": 40.0, "99": 49.95}


def test_the_lua_script_carries_each_request_with_its_token() -> None:
    script = api.wrk_script(
        [
            {"path": "/healthz", "headers": {}},
            {"path": "/v1/findings?unit=WLY&limit=50", "headers": {"Authorization": "Bearer pe_x"}},
        ]
    )
    assert '{"/healthz", {}}' in script
    assert '{"/v1/findings?unit=WLY&limit=50", {["Authorization"] = "Bearer pe_x"}}' in script
    assert "%(" not in script  # every placeholder filled
