"""DuckDB as the benchmark suite's peer: runs one workload's SQL on the suite's files.

Run by benches/suite/duckdb_peer.rs with the Python of a virtualenv holding the `duckdb`
package, and one argument: a JSON object

    {"workload": "wordcount" | "grep" | "terasort" | "tpch-q1" | "join",
     "threads": N, "files": [...], "orders": [...], "word": "...", "k": 10,
     "output": "DIR", "temp": "DIR"}

It prints one JSON line: {"duckdb": version, "threads": N, "seconds": query time, "result": ...,
"peak_rss_kib": the process's peak RSS over the query}
where the time covers the query alone (executing it and fetching its rows; for terasort,
sorting and writing the Parquet file), not starting Python or importing duckdb.
"""

import json
import sys
import time

import duckdb

# The yardstick's words are maximal runs of Unicode alphanumerics (Rust's
# char::is_alphanumeric), lowercased. RE2's [[:alnum:]] and \w are ASCII only, so the
# separators are "neither a letter nor a number" in Unicode terms.
WORD_SEPARATORS = r"[^\pL\pN]+"

# Rust's regex `\b` is Unicode-aware and RE2's is ASCII only ("Ünïgorshoda" has an ASCII word
# boundary before "gorshoda", but no Unicode one): a word bounded by anything that is not a
# Unicode word character (letters, marks, numbers, connector punctuation).
NOT_WORD = r"[^\pL\pM\pN\p{Pc}]"


def text_lines(files):
    """The lines of the text files as a relation with one VARCHAR column `line`."""
    return (
        "read_csv({files}, columns = {{'line': 'VARCHAR'}}, delim = chr(1), quote = '', "
        "escape = '', header = false, auto_detect = false, new_line = '\\n', "
        "strict_mode = false, null_padding = false)"
    ).format(files=sql_list(files))


def sql_list(values):
    return "[" + ", ".join(sql_string(v) for v in values) + "]"


def sql_string(value):
    return "'" + str(value).replace("'", "''") + "'"


def wordcount(con, spec):
    sql = (
        "SELECT word, count(*) FROM ("
        "  SELECT unnest(regexp_split_to_array(lower(line), ?)) AS word FROM {lines}"
        ") WHERE word <> '' GROUP BY word"
    ).format(lines=text_lines(spec["files"]))
    rows = con.execute(sql, [WORD_SEPARATORS]).fetchall()
    return [[w, n] for w, n in rows]


def grep(con, spec):
    # (file name, byte offset) of every line with the word. Each file is read whole; one
    # pattern matches a whole line holding the word (newline included), so the file splits
    # into the text between matching lines and the matching lines, and a match's offset is
    # the bytes of all the pieces and matches before it.
    # (A running sum over every line's length is exact too, but three times slower.)
    not_word = NOT_WORD[:-1] + "\\n]"  # and not crossing into the next line
    pattern = r"(?m)^[^\n]*(^|{nw}){w}({nw}|$)[^\n]*(\n|\z)".format(
        nw=not_word, w=escape_re2(spec["word"])
    )
    sql = (
        "SELECT file, unnest(list_transform(range(len(m)), lambda k:"
        "    list_sum(list_transform(p[1:k + 1], lambda x: strlen(x)))"
        "    + coalesce(list_sum(list_transform(m[1:k], lambda x: strlen(x))), 0))) AS off "
        "FROM (SELECT parse_filename(filename) AS file,"
        "      regexp_extract_all(content, $pattern) AS m,"
        "      regexp_split_to_array(content, $pattern) AS p"
        "      FROM read_text($files)) "
        "ORDER BY file, off"
    )
    rows = con.execute(sql, {"pattern": pattern, "files": spec["files"]}).fetchall()
    return [[f, int(o)] for f, o in rows]


def escape_re2(text):
    return "".join("\\" + c if not c.isalnum() else c for c in text)


def terasort(con, spec):
    # Sorted by key and written as one Parquet file, as the yardstick does; the suite reads it
    # back and checks count, order and key checksum exactly as it does Quiver's output.
    out = spec["output"] + "/part-00000.parquet"
    sql = (
        "COPY (SELECT key, payload FROM read_parquet({files}) ORDER BY key) TO {out} "
        "(FORMAT parquet)"
    ).format(files=sql_list(spec["files"]), out=sql_string(out))
    con.execute(sql).fetchall()
    return {"output": spec["output"]}


def tpch_q1(con, spec):
    sql = (
        "SELECT l_returnflag, l_linestatus,"
        "  sum(l_quantity), sum(l_extendedprice),"
        "  sum(l_extendedprice * (1 - l_discount)),"
        "  sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)),"
        "  avg(l_quantity), avg(l_extendedprice), avg(l_discount), count(*) "
        "FROM read_parquet({files}) WHERE l_shipdate <= DATE '1998-09-02' "
        "GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus"
    ).format(files=sql_list(spec["files"]))
    return [list(r) for r in con.execute(sql).fetchall()]


def join(con, spec):
    sql = (
        "SELECT o_custkey, sum(l_extendedprice * (1 - l_discount)) AS revenue "
        "FROM read_parquet({lineitem}) JOIN read_parquet({orders}) ON l_orderkey = o_orderkey "
        "GROUP BY o_custkey ORDER BY revenue DESC, o_custkey LIMIT {k}"
    ).format(
        lineitem=sql_list(spec["files"]),
        orders=sql_list(spec["orders"]),
        k=int(spec["k"]),
    )
    return [[c, r] for c, r in con.execute(sql).fetchall()]


WORKLOADS = {
    "wordcount": wordcount,
    "grep": grep,
    "terasort": terasort,
    "tpch-q1": tpch_q1,
    "join": join,
}


def reset_peak_rss():
    # A spawned process starts with its parent's peak (ru_maxrss survives exec, and the
    # suite's process holds the yardsticks' data): start the count afresh (Linux).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_kib():
    """VmHWM of this process, in KiB; 0 where /proc does not say."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def main():
    reset_peak_rss()
    spec = json.loads(sys.argv[1])
    run = WORKLOADS[spec["workload"]]
    con = duckdb.connect(":memory:")
    con.execute("SET threads = {}".format(int(spec["threads"])))
    # Its progress bar would print onto the JSON reply.
    con.execute("SET enable_progress_bar = false")
    con.execute("SET temp_directory = {}".format(sql_string(spec["temp"])))
    started = time.perf_counter()
    result = run(con, spec)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "duckdb": duckdb.__version__,
                "threads": int(spec["threads"]),
                "seconds": seconds,
                "result": result,
                "peak_rss_kib": peak_rss_kib(),
            }
        )
    )


if __name__ == "__main__":
    main()
