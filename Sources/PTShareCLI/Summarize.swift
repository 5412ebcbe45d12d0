import ArgumentParser
import PTShareCore

extension PTShare {
    public struct Summarize: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Print a markdown table of run reports (JSON files written by `run --json`).")

        @Argument(help: "Run report files.")
        public var files: [String]

        public init() {}

        public func run() throws {
            print(Summary.header.joined(separator: "\n"))
            for f in files {
                let bytes: [UInt8]
                do { bytes = Array(try ProcFS.read(f).utf8) } catch {
                    printError(error.description)
                    throw ExitCode(3)
                }
                let name = String(f.split(separator: "/").last ?? Substring(f)).replacingSuffix(".json")
                do { print(Summary.row(try JSONOutput.decodeRun(bytes), name: name)) } catch {
                    printError("\(f): not a \(RunReport.schemaName) report: \(error)")
                    throw ExitCode(3)
                }
            }
        }
    }
}

extension String {
    func replacingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
