/// One markdown table row per run report: what benchmark write-ups and CI logs quote.
public enum Summary {
    public static let header = [
        "| run | scenario | workers × size | control/worker | attributed | per worker | model | VmPTE Σ attributed "
            + "| spawn | map+touch | ready | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    public static func row(_ r: RunReport, name: String) -> String {
        let s = r.scenario
        let m = r.measured
        let t = r.timings
        let cells = [
            name,
            "\(s.backing) share=\(s.share) touch=\(s.touch) addr=\(s.address)",
            "\(s.workers) × \(ByteSize(s.sizeBytes))",
            ByteSize.human(m.controlPerWorkerBytes),
            ByteSize.human(m.attributedPageTableBytes),
            ByteSize.human(m.attributedPerWorkerBytes),
            ByteSize.human(r.model.expectedPageTableBytes),
            ByteSize.human(m.vmpteAttributedBytes),
            formatFixed(t.spawnSeconds, decimals: 2) + " s",
            formatFixed(t.mapTouchSeconds, decimals: 2) + " s",
            formatFixed(t.readySeconds, decimals: 2) + " s",
            r.verdict.rawValue,
        ]
        return "| " + cells.joined(separator: " | ") + " |"
    }
}
