/// Rows of text in aligned columns, for listings and key-value output.
///
///     SESSION_ID  SUBJECT  MODE
///     s-1         alice    session
struct TextTable {
    var header: [String]?
    var rows: [[String]] = []

    init(header: [String]? = nil, rows: [[String]] = []) {
        self.header = header
        self.rows = rows
    }

    mutating func append(_ row: [String]) { rows.append(row) }

    /// The table as lines; columns are two spaces apart, the last one is not padded.
    func render() -> String {
        let all = (header.map { [$0] } ?? []) + rows
        let columns = all.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in all {
            for (index, cell) in row.enumerated() {
                widths[index] = max(widths[index], cell.count)
            }
        }
        return all.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(to: widths[index])
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// Prints the table, unless it has no rows and no header.
    func print() {
        guard header != nil || !rows.isEmpty else { return }
        Swift.print(render())
    }
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
