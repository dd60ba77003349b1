import Agent
import PlatformCore

await PlatformMain.run(AgentService.definition)
