"""Stage fptas_select: the FPTAS's choice among the trained candidates, its table and its plot.

Reads the metrics of T and of every trained candidate and reference architecture, computes each one's
W-coefficient against T (inference cost: measured latency, or FLOPs, by --inference-cost) and writes, under
--output-dir:
  selection.json          the chosen architecture (largest W among the candidates; references never win)
  table.md, table.csv     the seed's Table 1: top three by W, T and the references (W, parameters, latency)
  candidates_scatter.csv  every candidate and reference (DVC plot: parameters against surrogate error)
  candidates.svg          parameters / latency / error of every candidate, the chosen one marked
"""
from __future__ import annotations

import csv
import io
import os

from workflow_scripts.bort.fptas import rank_by_w
from workflow_scripts.core.io_utils import read_json, write_json, write_text

INFERENCE_KEYS = {"latency": "latency_s", "flops": "flops"}
TABLE_COLUMNS = ["rank", "architecture", "depth", "heads", "hidden", "intermediate", "w_coefficient",
                 "parameters_millions", "latency_ms", "mflops", "surrogate_error", "mlm_accuracy"]


def table_row(rank, row: dict) -> dict:
    return {"rank": rank, "architecture": row["tag"], "depth": row["depth"], "heads": row["heads"],
            "hidden": row["hidden"], "intermediate": row["intermediate"],
            "w_coefficient": round(row["w_coefficient"], 4), "parameters_millions": round(row["parameters"] / 1e6, 3),
            "latency_ms": round(row["latency_s"] * 1e3, 3), "mflops": round(row["flops"] / 1e6, 1),
            "surrogate_error": round(row["surrogate_error"], 4), "mlm_accuracy": round(row["mlm_accuracy"], 4)}


def selection_table(ranked: list[dict], references: list[dict], teacher: dict, top: int = 3) -> list[dict]:
    """Top `top` candidates by W (ranks 1..), then the references and T with their own W (rank '-')."""
    rows = [table_row(rank, row) for rank, row in enumerate(ranked[:top], start=1)]
    rows += [table_row("reference", row) for row in references]
    rows.append(table_row("T", teacher))
    return rows


def to_csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_markdown(rows: list[dict], inference_cost: str) -> str:
    header = ["", "architecture <D, A, H, I>", "W", "parameters (M)", "latency (ms/sample)", "MFLOPs",
              "surrogate error", "MLM acc."]
    lines = [f"W-coefficient with inference cost = {inference_cost}; latency on one CPU thread, one sequence.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        shape = f"<{row['depth']}, {row['heads']}, {row['hidden']}, {row['intermediate']}>"
        lines.append(f"| {row['rank']} | {shape} | {row['w_coefficient']:.3f} | {row['parameters_millions']:.2f} | "
                     f"{row['latency_ms']:.2f} | {row['mflops']:.1f} | {row['surrogate_error']:.3f} | "
                     f"{row['mlm_accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


def scatter_svg(rows: list[dict], chosen: str, width: int = 360, height: int = 260) -> str:
    """Two panels: surrogate error against parameters, and against latency; the chosen one in red."""
    def panel(x_key: str, x_label: str, offset: int) -> list[str]:
        xs, ys = [r[x_key] for r in rows], [r["surrogate_error"] for r in rows]
        x_low, x_high = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        y_low, y_high = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

        def xy(x, y):
            return (offset + 50 + (x - x_low) / (x_high - x_low) * (width - 70),
                    height - 40 - (y - y_low) / (y_high - y_low) * (height - 60))

        parts = [f'<text x="{offset + width / 2}" y="{height - 8}" text-anchor="middle" font-size="12">{x_label}</text>',
                 f'<text x="{offset + 12}" y="{height / 2}" font-size="12" transform="rotate(-90 {offset + 12} '
                 f'{height / 2})" text-anchor="middle">surrogate error</text>']
        for row in rows:
            x, y = xy(row[x_key], row["surrogate_error"])
            color = "#d62728" if row["architecture"] == chosen else ("#7f7f7f" if row["role"] == "reference" else "#1f77b4")
            radius = 6 if row["architecture"] == chosen else 4
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{color}"><title>{row["architecture"]}: '
                         f'W {row["w_coefficient"]:.3f}</title></circle>')
        return parts

    body = panel("parameters_millions", "parameters (M)", 0) + panel("latency_ms", "latency (ms/sample)", width)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width}" height="{height}" role="img">'
            f'<text x="10" y="14" font-size="12">chosen: {chosen} (red); references grey</text>'
            + "".join(body) + "</svg>\n")


def select(teacher: dict, candidates: list[dict], references: list[dict], inference_cost: str) -> dict:
    key = INFERENCE_KEYS[inference_cost]
    ranked = rank_by_w(candidates, teacher, key)
    scored_references = rank_by_w(references, teacher, key) if references else []
    scored_teacher = rank_by_w([teacher], teacher, key)[0]
    return {"ranked": ranked, "references": scored_references, "teacher": scored_teacher,
            "chosen": ranked[0]}


def main(argv=None) -> None:
    from workflow_scripts.pipeline.cli import stage_parser, start_stage

    parser = stage_parser(__doc__)
    parser.add_argument("--teacher", required=True, help="metrics.json of T (fptas_candidate --teacher-only)")
    parser.add_argument("--candidates", nargs="+", required=True, help="metrics.json of each trained candidate")
    parser.add_argument("--references", nargs="*", default=[], help="metrics.json of each reference architecture")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--inference-cost", choices=sorted(INFERENCE_KEYS), required=True)
    parser.add_argument("--epsilon", type=int, required=True, help="recorded: the interval size that chose them")
    parser.add_argument("--representative", required=True, help="recorded: which member of an interval")
    parser.add_argument("--valid", type=int, required=True, help="recorded: valid architectures in the space")
    parser.add_argument("--skipped", type=int, required=True, help="recorded: combinations with H % A != 0")
    args = parser.parse_args(argv)
    logger, _ = start_stage(args)

    result = select(read_json(args.teacher), [read_json(p) for p in args.candidates],
                    [{**read_json(p), "role": "reference"} for p in args.references], args.inference_cost)
    chosen = result["chosen"]
    rows = selection_table(result["ranked"], result["references"], result["teacher"])
    all_rows = [table_row(rank, row) | {"role": row["role"]}
                for rank, row in enumerate(result["ranked"] + result["references"], start=1)]
    os.makedirs(args.output_dir, exist_ok=True)
    write_text(os.path.join(args.output_dir, "table.csv"), to_csv(rows, TABLE_COLUMNS))
    write_text(os.path.join(args.output_dir, "table.md"), to_markdown(rows, args.inference_cost))
    write_text(os.path.join(args.output_dir, "candidates_scatter.csv"), to_csv(all_rows, TABLE_COLUMNS + ["role"]))
    write_text(os.path.join(args.output_dir, "candidates.svg"), scatter_svg(all_rows, chosen["tag"]))
    write_json(os.path.join(args.output_dir, "selection.json"), {
        "chosen": {key: chosen[key] for key in ("tag", "depth", "heads", "hidden", "intermediate", "parameters",
                                               "flops", "latency_s", "surrogate_error", "w_coefficient")},
        "inference_cost": args.inference_cost, "epsilon": args.epsilon, "representative": args.representative,
        "valid_architectures": args.valid, "skipped_architectures": args.skipped,
        "trained_candidates": len(result["ranked"]),
        "ranking": [{"tag": row["tag"], "w_coefficient": row["w_coefficient"]} for row in result["ranked"]]})
    logger.info("chosen %s (W %.4f) among %d trained candidates", chosen["tag"], chosen["w_coefficient"],
                len(result["ranked"]))


if __name__ == "__main__":
    main()
