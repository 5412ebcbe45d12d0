import Foundation
import Testing

/// A captured file from Fixtures/ (`NAME.txt`), for the parser tests.
func fixture(_ name: String) throws -> String {
    let url = try #require(
        Bundle.module.url(forResource: name, withExtension: "txt", subdirectory: "Fixtures"),
        "missing fixture \(name).txt")
    return try String(contentsOf: url, encoding: .utf8)
}
