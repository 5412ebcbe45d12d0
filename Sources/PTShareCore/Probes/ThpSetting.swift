/// A transparent-hugepage policy from `/sys/kernel/mm/transparent_hugepage/{enabled,shmem_enabled}`.
///
/// Whether shmem/memfd is backed by huge pages changes how many page-table pages a mapping
/// needs (a PMD mapping needs no PTE page), so the selected policy is part of every result.
public struct ThpSetting: Sendable, Equatable {
    /// The bracketed choice, without brackets (`never` in `always [never] deny`).
    public var selected: String
    /// Every choice in file order, without brackets, the selected one included.
    public var choices: [String]

    public init(selected: String, choices: [String]) {
        self.selected = selected
        self.choices = choices
    }

    /// Parses a one-line policy such as `always within_size advise [never] deny force`.
    ///
    /// Exactly one choice must be bracketed; no bracket, two brackets, a half-bracketed word,
    /// a second non-blank line or empty text is an error.
    public static func parse(
        _ text: String, source: String = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
    ) throws(ProcParseError) -> ThpSetting {
        let lines = ProcText.lines(text)
        guard let line = lines.first else { throw ProcText.wholeFile(source, "empty file") }
        if lines.count > 1 {
            throw ProcText.failure(source, lines[1], "expected a single line")
        }
        var selected: String?
        var choices: [String] = []
        for word in ProcText.tokens(line.text) {
            let opens = word.hasPrefix("[")
            let closes = word.hasSuffix("]")
            let inner = word.dropFirst().dropLast()
            if opens && closes && word.count > 2 && !inner.contains("[") && !inner.contains("]") {
                let choice = String(inner)
                if selected != nil {
                    throw ProcText.failure(source, line, "more than one bracketed choice")
                }
                selected = choice
                choices.append(choice)
            } else if opens || closes || word.contains("[") || word.contains("]") {
                throw ProcText.failure(source, line, "malformed choice \"\(word)\"")
            } else {
                choices.append(String(word))
            }
        }
        guard let selected else {
            throw ProcText.failure(source, line, "no bracketed (selected) choice")
        }
        return ThpSetting(selected: selected, choices: choices)
    }
}
