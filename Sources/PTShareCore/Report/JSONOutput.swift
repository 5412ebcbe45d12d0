import FoundationEssentials

/// One encoder for every document ptshare writes: snake_case keys, sorted, pretty.
public enum JSONOutput {
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try e.encode(value)) + [0x0A]
    }

    public static func decodeRun(_ bytes: [UInt8]) throws -> RunReport {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(RunReport.self, from: Data(bytes))
    }

    public static func decodeBench(_ bytes: [UInt8]) throws -> BenchReport {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(BenchReport.self, from: Data(bytes))
    }
}
